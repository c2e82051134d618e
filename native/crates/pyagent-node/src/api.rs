//! The client gRPC API (`pyagent.node.v1.Node`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{ClientWriteError, ForwardReason, RaftError};
use openraft::type_config::TypeConfigExt as _;
use openraft::{ChangeMembers, ReadPolicy, ServerState};
use prost::Message as _;
use tonic::{Request, Response, Status};

use crate::auth::{Check, PublicKey, Reject, SigCache};
use crate::metrics::{Channel, Metrics};
use crate::node::Shared;
use crate::proto::{self, command::Op, node_server};
use crate::sm::read_state;
use crate::types::{ApplyResult, LogCommand, LogId, Member, NodeId, TypeConfig};

pub struct Api {
    pub shared: Arc<Shared>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn token(t: Option<(u64, u64)>) -> Option<proto::FencingToken> {
    t.map(|(term, index)| proto::FencingToken { term, index })
}

impl Api {
    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// A command's signer, replay window and signature, as apply will check them. Before the
    /// first membership is applied, the signer's key comes from the keys this node knows.
    async fn authenticate(&self, cmd: &LogCommand) -> Result<(), Reject> {
        let key = {
            let state = read_state(&self.shared.state);
            state.check_replay(cmd)?;
            match state.member_key(cmd.signer, &self.shared.sigs) {
                Err(Reject::NonMember) => self.shared.keyring.get(cmd.signer),
                other => Some(other?),
            }
        }
        .ok_or(Reject::NonMember)?;
        let message =
            crate::auth::command_message(&self.shared.cfg.swarm, cmd.signer, cmd.seq, &cmd.command);
        self.shared
            .verifier
            .verify(key, message, cmd.signature.clone())
            .await
    }

    /// A FAILED_PRECONDITION naming the leader, for clients to retry there.
    fn not_leader(&self, leader: Option<NodeId>) -> Status {
        let mut st = Status::failed_precondition(match leader {
            Some(l) => format!("not the leader; node {l} is"),
            None => "not the leader; no leader is known yet".to_string(),
        });
        if let Some(l) = leader {
            let grpc = self
                .shared
                .raft
                .metrics()
                .borrow_watched()
                .membership_config
                .membership()
                .get_node(&l)
                .map(|m| m.grpc.clone())
                .unwrap_or_default();
            if let Ok(v) = l.to_string().parse() {
                st.metadata_mut().insert("pyagent-leader-id", v);
            }
            if let Ok(v) = grpc.parse() {
                st.metadata_mut().insert("pyagent-leader-grpc", v);
            }
        }
        st
    }

    fn write_error(&self, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Status {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                self.not_leader(f.leader_id)
            }
            // The entry was appended here and dropped when this node took another leader's log
            // (or a snapshot over it): it "may have committed or may still commit through another
            // leader" (openraft-0.10.0-alpha.37 src/errors/mod.rs). Not the leader's
            // FAILED_PRECONDITION, which tells a client that nothing was proposed: the outcome is
            // unknown, as after a timeout (signed sequence numbers deduplicate a retry).
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                let leads = f.leader_id.map(|l| format!("; node {l} leads"));
                Status::unavailable(format!(
                    "the proposal was dropped on a leader change and may still commit{}",
                    leads.unwrap_or_default()
                ))
            }
            RaftError::APIError(ClientWriteError::PreconditionFailed(p)) => {
                Status::failed_precondition(p.to_string())
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                Status::failed_precondition(c.to_string())
            }
            RaftError::Fatal(f) => Status::unavailable(f.to_string()),
        }
    }

    async fn linearize(&self, stale: bool) -> Result<(), Status> {
        if stale {
            return Ok(());
        }
        match self.shared.reads.barrier().await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::LinearizableReadError::ForwardToLeader(
                f,
            ))) => Err(self.not_leader(f.leader_id)),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn membership_change(&self, op: Op) -> Result<proto::CommandResult, Status> {
        let raft = &self.shared.raft;
        let resp = match op {
            Op::AddMember(a) => {
                let m = a
                    .member
                    .ok_or_else(|| Status::invalid_argument("add_member.member is missing"))?;
                if m.node_id == 0 {
                    return Err(Status::invalid_argument(
                        "add_member.member.node_id must be at least 1",
                    ));
                }
                crate::identity::decode_public_key(&m.public_key).map_err(|e| {
                    Status::invalid_argument(format!("add_member.member.public_key: {e}"))
                })?;
                let node = Member {
                    name: m.name,
                    raft: m.raft,
                    grpc: m.grpc,
                    public_key: m.public_key,
                };
                // Blocks until the learner has caught up; a node that never answers must not
                // hold the call forever (it stays a learner; RemoveMember cleans up).
                let r = tokio::time::timeout(
                    ADD_MEMBER_CATCH_UP,
                    while_lease_pending(raft, || raft.add_learner(m.node_id, node.clone(), true)),
                )
                .await
                .map_err(|_| {
                    Status::deadline_exceeded(format!(
                        "node {} was added as a learner but did not catch up within {:?}",
                        m.node_id, ADD_MEMBER_CATCH_UP
                    ))
                })?
                .map_err(|e| self.write_error(e))?;
                if m.voter {
                    while_lease_pending(raft, || {
                        raft.change_membership(
                            ChangeMembers::AddVoterIds(BTreeSet::from([m.node_id])),
                            false,
                        )
                    })
                    .await
                    .map_err(|e| self.write_error(e))?
                } else {
                    r
                }
            }
            Op::RemoveMember(r) => {
                let is_voter = raft
                    .metrics()
                    .borrow_watched()
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == r.node_id);
                let change = if is_voter {
                    ChangeMembers::RemoveVoters(BTreeSet::from([r.node_id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([r.node_id]))
                };
                while_lease_pending(raft, || raft.change_membership(change.clone(), false))
                    .await
                    .map_err(|e| self.write_error(e))?
            }
            _ => return Err(Status::internal("not a membership change")),
        };
        Ok(proto::CommandResult {
            applied: true,
            term: resp.log_id.leader_id.term,
            index: resp.log_id.index,
            ..Default::default()
        })
    }
}

#[tonic::async_trait]
impl node_server::Node for Api {
    async fn submit(
        &self,
        request: Request<proto::SignedCommand>,
    ) -> Result<Response<proto::CommandResult>, Status> {
        let sc = request.into_inner();
        let cmd = LogCommand {
            signer: sc.signer,
            seq: sc.seq,
            command: sc.command,
            signature: sc.signature,
            proposed_at_ms: now_ms(),
        };
        // Checked here to refuse early (and count); checked again on apply by every replica.
        if let Err(r) = self.authenticate(&cmd).await {
            self.metrics().reject(Channel::Client, r);
            return Err(Status::unauthenticated(format!("command refused: {r}")));
        }
        let decoded = proto::Command::decode(cmd.command.as_slice()).map_err(|e| {
            Status::invalid_argument(format!("command is not a pyagent.node.v1.Command: {e}"))
        })?;
        if let Some(op @ (Op::AddMember(_) | Op::RemoveMember(_))) = decoded.op {
            return self.membership_change(op).await.map(Response::new);
        }
        let started = Instant::now();
        let (r, log_id) = self
            .shared
            .proposer
            .propose(cmd)
            .await
            .map_err(|e| self.write_error(e))?;
        self.metrics().commit_latency.observe(started.elapsed());
        if r.applied {
            self.metrics().applied.fetch_add(1, Ordering::Relaxed);
        } else {
            self.metrics().refused.fetch_add(1, Ordering::Relaxed);
            if r.refusal == crate::state::refusal::UNAUTHENTICATED {
                if let Some(reason) = crate::auth::Reject::ALL
                    .iter()
                    .find(|x| x.label() == r.message)
                {
                    self.metrics().reject(Channel::Client, *reason);
                }
            }
        }
        Ok(Response::new(proto::CommandResult {
            applied: r.applied,
            refusal: r.refusal,
            message: r.message,
            term: log_id.leader_id.term,
            index: log_id.index,
            token: token(r.token),
            lease_expires_ms: r.lease_expires_ms,
        }))
    }

    async fn get(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::GetResponse>, Status> {
        let req = request.into_inner();
        self.linearize(req.stale).await?;
        let st = read_state(&self.shared.state);
        let read_index = st.last_applied.map(|l| l.index).unwrap_or(0);
        Ok(Response::new(match st.kv.get(&req.key) {
            Some(v) => proto::GetResponse {
                found: true,
                value: v.bytes.clone(),
                revision: v.revision,
                read_index,
            },
            None => proto::GetResponse {
                found: false,
                read_index,
                ..Default::default()
            },
        }))
    }

    async fn get_task(
        &self,
        request: Request<proto::GetTaskRequest>,
    ) -> Result<Response<proto::TaskInfo>, Status> {
        let req = request.into_inner();
        self.linearize(req.stale).await?;
        let st = read_state(&self.shared.state);
        Ok(Response::new(match st.tasks.get(&req.task) {
            Some(t) => proto::TaskInfo {
                held: t.lease_expires_ms > now_ms(),
                owner: t.owner.clone(),
                token: token(Some(t.token)),
                lease_expires_ms: t.lease_expires_ms,
            },
            None => proto::TaskInfo::default(),
        }))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        Ok(Response::new(status(&self.shared)))
    }
}

pub fn role(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

pub fn status(shared: &Shared) -> proto::StatusResponse {
    let m = shared.raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let nodes: BTreeMap<NodeId, Member> =
        membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    let kv = shared.kv.stats();
    proto::StatusResponse {
        node_id: shared.cfg.node_id,
        name: shared.cfg.name.clone(),
        swarm: shared.cfg.swarm.clone(),
        role: role(m.state).to_string(),
        term: m.current_term,
        leader_id: m.current_leader.unwrap_or(0),
        commit_index: shared.committed_index(),
        applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        last_log_index: m.last_log_index.unwrap_or(0),
        members: nodes
            .into_iter()
            .map(|(id, n)| proto::Member {
                node_id: id,
                name: n.name,
                raft: n.raft,
                grpc: n.grpc,
                voter: voters.contains(&id),
                public_key: n.public_key,
            })
            .collect(),
        kv: Some(proto::KvStats {
            available: kv.available,
            block_size: kv.block_size,
            blocks_total: kv.blocks_total,
            blocks_used: kv.blocks_used,
            hits: kv.hits,
            misses: kv.misses,
            evictions: kv.evictions,
        }),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

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

/// How long AddMember waits for the new node to catch up before answering DEADLINE_EXCEEDED.
pub const ADD_MEMBER_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(60);

/// Commands in one entry at most.
pub const MAX_BATCH: usize = 512;
/// Batches being committed at once (pipelining between the leader's fsync and replication).
pub const IN_FLIGHT: usize = 2;

impl Proposer {
    pub fn spawn(raft: crate::types::Raft) -> (Proposer, tokio::task::JoinHandle<()>) {
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
pub(crate) async fn while_lease_pending<T, F, Fut>(
    raft: &crate::types::Raft,
    mut f: F,
) -> Result<T, WriteError>
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
    raft: crate::types::Raft,
    state: std::sync::Mutex<ReadQueue>,
}

#[derive(Default)]
struct ReadQueue {
    waiting: Vec<tokio::sync::oneshot::Sender<Result<(), ReadError>>>,
    running: bool,
}

impl ReadBarrier {
    pub fn new(raft: crate::types::Raft) -> Arc<Self> {
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
