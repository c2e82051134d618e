//! The paths from client calls into Raft, batched: proposals (group commit), signature checks,
//! the wait for a leader's quorum lease, and linearizable read barriers. The gRPC service
//! (`api`) and membership bootstrap (`node`) use them; they use nothing of either.

use std::sync::Arc;

use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{ClientWriteError, ForwardReason, RaftError};
use openraft::type_config::TypeConfigExt as _;
use openraft::{ReadPolicy, ServerState};

use crate::auth::{Check, PublicKey, Reject, SigCache};
use crate::sm::Raft;
use crate::types::{ApplyResult, LogCommand, LogId, TypeConfig};

/// Group commit for client commands: commands that arrive while batches are being committed are
/// proposed together as one entry. Under openraft 0.9, which waited for each log append's fsync
/// before the next, this was what let writes share an fsync; under 0.10, which pipelines appends,
/// it still spares each command an entry's fixed costs (encoding and checksum on every replica,
/// its place in the replication stream, apply bookkeeping). [`IN_FLIGHT`] was tuned under 0.9.
pub struct Proposer {
    tx: tokio::sync::mpsc::Sender<Proposal>,
}

type WriteError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;
type Proposal = (
    LogCommand,
    tokio::sync::oneshot::Sender<Result<(ApplyResult, LogId), WriteError>>,
);

/// Commands in one entry at most.
pub const MAX_BATCH: usize = 512;
/// Batches being committed at once (pipelining between the leader's fsync and replication).
pub const IN_FLIGHT: usize = 2;

impl Proposer {
    pub fn spawn(raft: Raft) -> (Proposer, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Proposal>(MAX_BATCH * 8);
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let raft = raft.clone();
                tokio::spawn(async move {
                    let (cmds, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    let batch = crate::types::Batch(cmds);
                    match while_lease_pending(&raft, || raft.client_write(batch.clone())).await {
                        Ok(resp) => {
                            for (reply, r) in replies.into_iter().zip(resp.data) {
                                let _ = reply.send(Ok((r, resp.log_id)));
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                    drop(slot);
                });
            }
        });
        (Proposer { tx }, task)
    }

    pub async fn propose(&self, cmd: LogCommand) -> Result<(ApplyResult, LogId), WriteError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stopped = || RaftError::Fatal(openraft::error::Fatal::Stopped);
        self.tx.send((cmd, tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// Checks the signatures of client commands for the API, batching those that arrive together:
/// under load one multiscalar multiplication covers many commands (about a quarter of a single
/// check's cost each at 32); a command that arrives alone is checked alone, one task hop later.
/// Successes are remembered in the [`SigCache`] for this node's apply of the same commands.
pub struct SignatureBatcher {
    sigs: Arc<SigCache>,
    tx: tokio::sync::mpsc::Sender<SigJob>,
}

struct SigJob {
    key: PublicKey,
    message: Vec<u8>,
    sig: Vec<u8>,
    reply: tokio::sync::oneshot::Sender<Result<(), Reject>>,
}

/// Signatures in one batch at most.
pub const MAX_SIG_BATCH: usize = 256;

impl SignatureBatcher {
    pub fn spawn(sigs: Arc<SigCache>) -> (SignatureBatcher, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SigJob>(MAX_SIG_BATCH * 8);
        let cache = sigs.clone();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < MAX_SIG_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let checks: Vec<Check<'_>> = jobs
                    .iter()
                    .map(|j| Check {
                        key: &j.key,
                        message: &j.message,
                        sig: &j.sig,
                    })
                    .collect();
                let verdicts = cache.verify_many_and_remember(&checks);
                drop(checks);
                for (job, verdict) in jobs.into_iter().zip(verdicts) {
                    let _ = job.reply.send(verdict);
                }
            }
        });
        (SignatureBatcher { sigs, tx }, task)
    }

    /// Verifies (and remembers) one signature, in a batch with any that arrive meanwhile.
    pub async fn verify(
        &self,
        key: PublicKey,
        message: Vec<u8>,
        sig: Vec<u8>,
    ) -> Result<(), Reject> {
        let (reply, verdict) = tokio::sync::oneshot::channel();
        let job = SigJob {
            key,
            message,
            sig,
            reply,
        };
        match self.tx.send(job).await {
            Ok(()) => verdict.await.unwrap_or(Err(Reject::Malformed)),
            // The batching task has stopped (shutting down): check it here.
            Err(tokio::sync::mpsc::error::SendError(job)) => {
                self.sigs
                    .verify_and_remember(&job.key, &job.message, &job.sig)
            }
        }
    }
}

/// How long a write waits at most for this leader's quorum lease (see [`while_lease_pending`]).
pub const LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// openraft 0.10 refuses writes and membership changes on a leader without a valid quorum lease
/// (a quorum acknowledged a message it sent less than `election_timeout_max` ago), where 0.9
/// accepted them: right after an election until a follower answers the leader's first
/// AppendEntries, or after it lost touch with a quorum. It appends nothing and answers
/// ForwardToLeader with no leader and reason LeaseExpired. Such a call is made again once the
/// Raft metrics show a lease that is valid now, or that this node no longer leads (the call then
/// gets the ordinary answer for that); after LEASE_WAIT the refusal is returned. Waiting on the
/// metrics rather than polling lets a new leader's first writes go ahead as soon as the first
/// quorum acknowledgement is processed.
pub(crate) async fn while_lease_pending<T, F, Fut>(raft: &Raft, mut f: F) -> Result<T, WriteError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, WriteError>>,
{
    let deadline = tokio::time::Instant::now() + LEASE_WAIT;
    let lease = std::time::Duration::from_millis(raft.config().election_timeout_max);
    loop {
        match f().await {
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(fw)))
                if fw.reason == ForwardReason::LeaseExpired =>
            {
                if !lease_valid_or_not_leader(raft.metrics(), lease, deadline).await {
                    return Err(RaftError::APIError(ClientWriteError::ForwardToLeader(fw)));
                }
            }
            other => return other,
        }
    }
}

/// Waits until `metrics` shows this node leading with a quorum acknowledgement younger than
/// `lease` (the condition openraft checks before accepting a write), or not leading. False if
/// neither happens by `deadline` or Raft stops. Metrics are published after every batch of events
/// Raft handles, so the acknowledgement that renews the lease wakes this.
async fn lease_valid_or_not_leader(
    mut metrics: MetricsWatch,
    lease: std::time::Duration,
    deadline: tokio::time::Instant,
) -> bool {
    let wait = async {
        loop {
            {
                let m = metrics.borrow_and_update();
                if m.state != ServerState::Leader
                    || m.last_quorum_acked
                        .is_some_and(|acked| TypeConfig::now() < acked.into_inner() + lease)
                {
                    return true;
                }
            }
            if metrics.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout_at(deadline, wait)
        .await
        .unwrap_or(false)
}

type MetricsWatch =
    openraft::type_config::alias::WatchReceiverOf<TypeConfig, openraft::RaftMetrics<TypeConfig>>;

type ReadError = RaftError<TypeConfig, openraft::error::LinearizableReadError<TypeConfig>>;

/// Batches linearizable reads: one ReadIndex round (openraft `ensure_linearizable`) serves every
/// read that arrived before the round started. Reads arriving during a round wait for the next
/// one, which starts after them, so each read still observes every write committed before it
/// arrived.
pub struct ReadBarrier {
    raft: Raft,
    state: std::sync::Mutex<ReadQueue>,
}

#[derive(Default)]
struct ReadQueue {
    waiting: Vec<tokio::sync::oneshot::Sender<Result<(), ReadError>>>,
    running: bool,
}

impl ReadBarrier {
    pub fn new(raft: Raft) -> Arc<Self> {
        Arc::new(ReadBarrier {
            raft,
            state: std::sync::Mutex::new(ReadQueue::default()),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, ReadQueue> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn barrier(self: &Arc<Self>) -> Result<(), ReadError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut q = self.queue();
            q.waiting.push(tx);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut q = me.queue();
                        if q.waiting.is_empty() {
                            q.running = false;
                            return;
                        }
                        std::mem::take(&mut q.waiting)
                    };
                    let res = me
                        .raft
                        .ensure_linearizable(ReadPolicy::ReadIndex)
                        .await
                        .map(|_| ());
                    for tx in batch {
                        let _ = tx.send(res.clone());
                    }
                }
            });
        }
        rx.await
            .map_err(|_| RaftError::Fatal(openraft::error::Fatal::Stopped))?
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;

    /// Concurrent commands share batches, and each gets the verdict it would get alone: forged
    /// ones are refused without failing their batch-mates, and only successes are remembered
    /// (for the leader's apply).
    #[test]
    fn signature_batcher_gives_each_command_its_own_verdict() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let sigs = Arc::new(SigCache::default());
            let (batcher, task) = SignatureBatcher::spawn(sigs.clone());
            let key = SigningKey::from_bytes(&[3; 32]);
            let public = crate::auth::public_key(&key.verifying_key()).unwrap();
            let jobs = (0..40u8).map(|i| {
                let message = vec![i; 100];
                let mut sig = key.sign(&message).to_bytes().to_vec();
                if i % 7 == 3 {
                    sig[10] ^= 1; // forged
                }
                let batcher = &batcher;
                async move { (i, batcher.verify(public, message, sig).await) }
            });
            // All submitted before the batching task runs: they share batches.
            let verdicts = futures_join_all(jobs).await;
            for (i, verdict) in &verdicts {
                if i % 7 == 3 {
                    assert_eq!(*verdict, Err(Reject::BadSignature), "command {i}");
                } else {
                    assert_eq!(*verdict, Ok(()), "command {i}");
                }
            }
            // The successes are remembered once each, for apply.
            for (i, _) in verdicts.iter().filter(|(i, _)| i % 7 != 3) {
                let message = vec![*i; 100];
                let sig = key.sign(&message).to_bytes().to_vec();
                let remembered = Check {
                    key: &public,
                    message: &message,
                    sig: &sig,
                };
                assert_eq!(sigs.verify_many_and_remember(&[remembered]), vec![Ok(())]);
            }
            drop(batcher);
            task.await.unwrap();
        });
    }

    fn leader_metrics(
        acked: Option<openraft::type_config::alias::InstantOf<TypeConfig>>,
    ) -> openraft::RaftMetrics<TypeConfig> {
        let mut m = openraft::RaftMetrics::new_initial(1);
        m.state = ServerState::Leader;
        m.last_quorum_acked = acked.map(openraft::metrics::SerdeInstant::new);
        m
    }

    /// The lease wait ends when a quorum acknowledgement recent enough for a valid lease is
    /// published, or the node stops leading; it gives up at its deadline (an acknowledgement too
    /// old for a lease does not count) or when Raft stops publishing metrics.
    #[test]
    fn lease_wait_wakes_on_a_fresh_acknowledgement_and_is_bounded() {
        use openraft::async_runtime::WatchSender as _;
        use std::time::Duration;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let lease = Duration::from_millis(300);
            let far = || tokio::time::Instant::now() + Duration::from_secs(20);

            // Just elected: no acknowledgement yet; the first one wakes the write.
            let (tx, rx) = TypeConfig::watch_channel(leader_metrics(None));
            let t = tokio::time::Instant::now();
            let publish = async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send(leader_metrics(Some(TypeConfig::now()))).unwrap();
            };
            let (valid, ()) = tokio::join!(lease_valid_or_not_leader(rx, lease, far()), publish);
            assert!(valid);
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

            // Only a stale acknowledgement, and metrics keep changing: the deadline ends it.
            let stale = TypeConfig::now() - lease * 2;
            let (tx, rx) = TypeConfig::watch_channel(leader_metrics(Some(stale)));
            let t = tokio::time::Instant::now();
            let deadline = t + Duration::from_millis(200);
            let churn = async {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    tx.send(leader_metrics(Some(stale))).unwrap();
                }
            };
            let (valid, ()) = tokio::join!(lease_valid_or_not_leader(rx, lease, deadline), churn);
            assert!(!valid);
            assert!(t.elapsed() >= Duration::from_millis(200));

            // No longer the leader: the write is made again at once (and answered not-leader).
            let (tx, rx) = TypeConfig::watch_channel(leader_metrics(None));
            let step_down = async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut m = leader_metrics(None);
                m.state = ServerState::Follower;
                tx.send(m).unwrap();
            };
            let (valid, ()) = tokio::join!(lease_valid_or_not_leader(rx, lease, far()), step_down);
            assert!(valid);

            // Raft stopped (the metrics sender is gone): no lease will come.
            let (tx, rx) = TypeConfig::watch_channel(leader_metrics(None));
            drop(tx);
            assert!(!lease_valid_or_not_leader(rx, lease, far()).await);
        });
    }

    /// Polls every future to completion on the current task, all of them started before any
    /// finishes (the crate has no futures utilities).
    async fn futures_join_all<F: std::future::Future>(
        futures: impl Iterator<Item = F>,
    ) -> Vec<F::Output> {
        let mut pending: Vec<_> = futures.map(|f| Some(Box::pin(f))).collect();
        let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
                if let Some(f) = slot {
                    if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                        *result = Some(v);
                        *slot = None;
                    }
                }
            }
            if pending.iter().all(Option::is_none) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        results.into_iter().flatten().collect()
    }
}
