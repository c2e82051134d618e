//! Raft RPCs between nodes over TCP: every request and response is a signed [`Envelope`] in a
//! length-prefixed frame (`[u32 BE length][msgpack]`). One connection per openraft client,
//! reused for its request/response pairs and re-dialled after an error.
//!
//! Every connection is an encrypted channel of the mesh (`pyagent_mesh::secure`: Noise XX,
//! ChaCha20-Poly1305, each side's key proven by its node key), opened only between members:
//! the side that accepts refuses a key outside its keyring before reading a byte, the side that
//! dials refuses a peer whose key is not the target's. Signatures on every envelope stay: they
//! are what the replicated state checks, and what a replay window counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use openraft::async_runtime::WatchReceiver as _;
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, VoteRequest,
    VoteResponse,
};
use openraft::OptionalSend;
use pyagent_mesh::secure::SecureStream;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::append::{append_prefix, APPEND_MAX_BYTES};
use crate::auth::{self, Envelope, Reject, ReplayWindow, Signer};
use crate::metrics::{Channel, Metrics};
use crate::recovery::{LeaderSaid, Recovery};
use crate::sm::Raft;
use crate::types::{Entry, Member, NodeId, Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote};

const MAX_FRAME: usize = 256 << 20;

#[derive(Serialize, Deserialize)]
pub enum RaftRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    /// A whole snapshot in one message (openraft 0.10's `full_snapshot`; 0.9 sent chunks).
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        #[serde(with = "crate::types::serde_bytes_vec")]
        data: SnapshotData,
    },
    PreVote(VoteRequest<TypeConfig>),
    /// The term of the receiver's saved vote, asked by a node whose own vote was lost
    /// (recovery.rs).
    CurrentTerm,
}

#[derive(Serialize, Deserialize)]
pub enum RaftReply {
    Append(Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>),
    Vote(Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>),
    Snapshot(Result<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>>),
    /// The receiver refused the request (signature, membership, replay); the reason label.
    Rejected(String),
    PreVote(Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>),
    /// None: the receiver lost its own vote and has not relearnt a floor (not to be counted).
    CurrentTerm(Option<u64>),
}

/// How a node whose vote was lost learns what term it may have reached: the term of its saved
/// vote, which a peer's [`RaftRequest::CurrentTerm`] is answered with.
pub type DurableTerm = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The label a recovering node refuses a leader's request with while it does not know its term
/// floor, or when the leader's term is below it (recovery.rs).
const REFUSED_BELOW_FLOOR: &str = "recovering: the leader's term is not known to be current";

/// Public keys of the current members, refreshed from the Raft membership.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: RwLock<BTreeMap<NodeId, auth::PublicKey>>,
}

impl Keyring {
    pub fn new(keys: BTreeMap<NodeId, auth::PublicKey>) -> Self {
        Keyring {
            keys: RwLock::new(keys),
        }
    }

    pub fn get(&self, id: NodeId) -> Option<auth::PublicKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
    }

    /// Every key, by node id.
    pub fn snapshot(&self) -> BTreeMap<NodeId, auth::PublicKey> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The member holding `key` (an Ed25519 public key's bytes), if any.
    pub fn node_of_key(&self, key: &[u8; 32]) -> Option<NodeId> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter()
            .find(|(_, k)| <[u8; 32]>::from(**k) == *key)
            .map(|(id, _)| *id)
    }

    pub fn replace(&self, keys: BTreeMap<NodeId, auth::PublicKey>) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    pub fn keys_from_members<'a>(
        members: impl Iterator<Item = (&'a NodeId, &'a Member)>,
    ) -> BTreeMap<NodeId, auth::PublicKey> {
        members
            .filter_map(|(id, m)| auth::decode_member_key(&m.public_key).map(|k| (*id, k)))
            .collect()
    }
}

/// Verifies incoming envelopes and counts what it refuses.
pub struct Gate {
    pub me: NodeId,
    pub swarm: String,
    pub keyring: Arc<Keyring>,
    pub metrics: Arc<Metrics>,
    replay: Mutex<ReplayWindow>,
    /// Sequences below this were sent before this process started (minus the clock skew).
    floor: u64,
}

impl Gate {
    pub fn new(me: NodeId, swarm: String, keyring: Arc<Keyring>, metrics: Arc<Metrics>) -> Self {
        let floor = auth::now_micros().saturating_sub(auth::MAX_CLOCK_SKEW_MICROS);
        Gate {
            me,
            swarm,
            keyring,
            metrics,
            replay: Mutex::new(ReplayWindow::default()),
            floor,
        }
    }

    pub fn check(&self, env: &Envelope) -> Result<(), Reject> {
        let res = (|| {
            if env.to != self.me {
                return Err(Reject::WrongRecipient);
            }
            let key = self.keyring.get(env.from).ok_or(Reject::NonMember)?;
            auth::verify(
                &key,
                &auth::raft_message(&self.swarm, env.from, env.to, env.seq, &env.body),
                &env.sig,
            )?;
            if env.seq < self.floor {
                return Err(Reject::Replay);
            }
            self.replay
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .accept(env.from, env.seq)
        })();
        if let Err(r) = res {
            self.metrics.reject(Channel::Raft, r);
        }
        res
    }
}

pub async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) -> std::io::Result<()> {
    // length and body in one write: one segment, one wake-up on the receiving side
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(bytes);
    stream.write_all(&frame).await?;
    stream.flush().await
}

pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes is too large"
        )));
    }
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Serves Raft RPCs from peers until the listener fails. While `recovery` says this node is
/// recovering from damage, vote and pre-vote requests are answered "not granted" without
/// reaching openraft (recovery.rs says why), and what each leader's request says is reported
/// to it. A node whose vote was lost takes no leader's request below its term floor (nor any
/// before it knows the floor), and `durable_term` answers peers in that state.
pub async fn serve(
    listener: TcpListener,
    raft: Raft,
    signer: Arc<Signer>,
    gate: Arc<Gate>,
    recovery: Arc<Recovery>,
    durable_term: DurableTerm,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // e.g. out of file descriptors: do not spin
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (raft, signer, gate, recovery, durable_term) = (
            raft.clone(),
            signer.clone(),
            gate.clone(),
            recovery.clone(),
            durable_term.clone(),
        );
        tokio::spawn(async move {
            let Some((_, mut stream)) = accept_channel(tcp, &signer, &gate).await else {
                return;
            };
            while let Ok(frame) = read_frame(&mut stream).await {
                let Ok(env) = rmp_serde::from_slice::<Envelope>(&frame) else {
                    gate.metrics.reject(Channel::Raft, Reject::Malformed);
                    return;
                };
                let reply = match gate.check(&env) {
                    Err(r) => RaftReply::Rejected(r.label().to_string()),
                    Ok(()) => match rmp_serde::from_slice::<RaftRequest>(&env.body) {
                        Err(_) => {
                            gate.metrics.reject(Channel::Raft, Reject::Malformed);
                            RaftReply::Rejected(Reject::Malformed.label().to_string())
                        }
                        Ok(RaftRequest::Append(r))
                            if !recovery.admits_leader(r.vote.leader_id.term) =>
                        {
                            recovery.leader_said(LeaderSaid {
                                term: r.vote.leader_id.term,
                                committed: r.leader_commit,
                                accepted: false,
                            });
                            RaftReply::Rejected(REFUSED_BELOW_FLOOR.to_string())
                        }
                        Ok(RaftRequest::Snapshot { vote, .. })
                            if !recovery.admits_leader(vote.leader_id.term) =>
                        {
                            RaftReply::Rejected(REFUSED_BELOW_FLOOR.to_string())
                        }
                        Ok(RaftRequest::CurrentTerm) => {
                            RaftReply::CurrentTerm(recovery.term_to_tell(durable_term()))
                        }
                        Ok(RaftRequest::Append(r)) => {
                            let (term, committed) = (r.vote.leader_id.term, r.leader_commit);
                            let res = raft.append_entries(r).await;
                            let accepted = matches!(
                                res,
                                Ok(AppendEntriesResponse::Success
                                    | AppendEntriesResponse::PartialSuccess(_))
                            );
                            recovery.leader_said(LeaderSaid {
                                term,
                                committed,
                                accepted,
                            });
                            RaftReply::Append(res)
                        }
                        Ok(RaftRequest::Vote(_)) if recovery.is_recovering() => {
                            recovery.refused_vote();
                            RaftReply::Vote(Ok(not_granted(&raft)))
                        }
                        Ok(RaftRequest::PreVote(_)) if recovery.is_recovering() => {
                            recovery.refused_vote();
                            RaftReply::PreVote(Ok(not_granted(&raft)))
                        }
                        Ok(RaftRequest::Vote(r)) => RaftReply::Vote(raft.vote(r).await),
                        Ok(RaftRequest::PreVote(r)) => RaftReply::PreVote(raft.pre_vote(r).await),
                        Ok(RaftRequest::Snapshot { vote, meta, data }) => {
                            let (term, committed) = (vote.leader_id.term, meta.last_log_id);
                            let res = raft
                                .install_full_snapshot(
                                    vote,
                                    Snapshot {
                                        meta,
                                        snapshot: data,
                                    },
                                )
                                .await
                                .map_err(RaftError::Fatal);
                            recovery.leader_said(LeaderSaid {
                                term,
                                committed,
                                accepted: res.as_ref().is_ok_and(|r| r.vote == vote),
                            });
                            RaftReply::Snapshot(res)
                        }
                    },
                };
                let Ok(body) = rmp_serde::to_vec(&reply) else {
                    return;
                };
                let out = signer.envelope(env.from, body);
                let Ok(bytes) = rmp_serde::to_vec(&out) else {
                    return;
                };
                if write_frame(&mut stream, &bytes).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Opens the encrypted channel of an accepted connection; None (counted) unless the peer proved
/// a member's key.
pub async fn accept_channel(
    tcp: TcpStream,
    signer: &Signer,
    gate: &Gate,
) -> Option<(NodeId, SecureStream)> {
    let Ok((key, stream)) = signer.channel().inbound(tcp).await else {
        gate.metrics.reject(Channel::Raft, Reject::Malformed);
        return None;
    };
    let Some(peer) = gate.keyring.node_of_key(&key) else {
        gate.metrics.reject(Channel::Raft, Reject::NonMember);
        return None;
    };
    Some((peer, stream))
}

/// Dials `addr` and opens an encrypted channel to node `target`, which must prove its key.
async fn dial_channel(
    addr: &str,
    target: NodeId,
    signer: &Signer,
    gate: &Gate,
) -> Result<SecureStream, CallError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| CallError::Connect(addr.to_owned(), e))?;
    let _ = tcp.set_nodelay(true);
    let (key, stream) = signer
        .channel()
        .outbound(tcp)
        .await
        .map_err(|e| CallError::Protocol(e.to_string()))?;
    if gate.keyring.node_of_key(&key) != Some(target) {
        gate.metrics.reject(Channel::Raft, Reject::NonMember);
        return Err(CallError::Protocol(format!(
            "the peer at {addr} is not node {target}"
        )));
    }
    Ok(stream)
}

/// How long one peer has to tell its term, and the pause between rounds of asking.
const ASK_TERM_TIMEOUT: Duration = Duration::from_secs(2);
const ASK_TERM_EVERY: Duration = Duration::from_millis(200);

/// For a node whose vote was lost (recovery.rs): asks the other voters for the terms of their
/// saved votes until [`answers_needed`](crate::recovery::answers_needed) of them have answered,
/// and sets the highest as the node's term floor. `voters` names the voters this node knows (its
/// Raft membership and its configuration); it is asked again every round, since the membership
/// can change meanwhile. An answer, once given, stands: a voter's term only grows.
pub async fn learn_term_floor(
    mut network: NetworkFactory,
    me: NodeId,
    voters: impl Fn() -> BTreeMap<NodeId, Member>,
    recovery: Arc<Recovery>,
) {
    let mut terms: BTreeMap<NodeId, u64> = BTreeMap::new();
    while recovery.needs_floor() {
        let mut all = voters();
        let needed =
            crate::recovery::answers_needed(all.len() + usize::from(!all.contains_key(&me)));
        all.remove(&me);
        let mut asks = Vec::new();
        for (id, member) in all.iter().filter(|(id, _)| !terms.contains_key(id)) {
            let mut client = network.new_client(*id, member).await;
            let id = *id;
            asks.push(async move { (id, client.current_term(ASK_TERM_TIMEOUT).await) });
        }
        for (id, answer) in futures_util::future::join_all(asks).await {
            if let Ok(Some(term)) = answer {
                terms.insert(id, term);
            }
        }
        let told: Vec<u64> = all.keys().filter_map(|id| terms.get(id).copied()).collect();
        recovery.asked(told.len(), needed);
        if told.len() >= needed {
            recovery.set_floor(told.into_iter().max().unwrap_or(0));
            return;
        }
        tokio::time::sleep(ASK_TERM_EVERY).await;
    }
}

/// The answer of a recovering node to a vote or pre-vote request: its own vote, not granted,
/// and no log id (a candidate must not take a log it lost as a reason to wait).
fn not_granted(raft: &Raft) -> VoteResponse<TypeConfig> {
    let vote = raft.metrics().borrow_watched().vote;
    VoteResponse::new(vote, None, false)
}

#[derive(Clone)]
pub struct NetworkFactory {
    pub signer: Arc<Signer>,
    pub gate: Arc<Gate>,
    pub idle: Arc<IdleConnections>,
    pub health: Arc<PeerHealth>,
}

/// Which peers the last call found unreachable, shared by every client of one node, so that an
/// outage is logged once when it starts and once when it ends. openraft's own warnings come
/// per failed call (its heartbeat worker: one per heartbeat interval per peer, thousands in a
/// short outage), so `main.rs` keeps its heartbeat worker at ERROR unless asked for more.
#[derive(Default)]
pub struct PeerHealth {
    /// Set while any peer is down: a successful call reads only this flag in the common case.
    any_down: std::sync::atomic::AtomicBool,
    down: Mutex<BTreeSet<NodeId>>,
}

impl PeerHealth {
    fn failed(&self, target: NodeId, why: &CallError) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down.insert(target) {
            self.any_down
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(peer = target, "peer unreachable: {why}");
        }
    }

    fn answered(&self, target: NodeId) {
        if !self.any_down.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down.remove(&target) {
            self.any_down
                .store(!down.is_empty(), std::sync::atomic::Ordering::Relaxed);
            tracing::info!(peer = target, "peer answers again");
        }
    }

    /// Whether the last call to `target` failed.
    #[cfg(test)]
    pub fn is_down(&self, target: NodeId) -> bool {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.contains(&target)
    }
}

/// Connections left by dropped clients, reused by the next client to the same peer: openraft 0.9
/// creates a client for every leadership check (each linearizable-read round), which otherwise
/// dialled, accepted and spawned a connection per round.
#[derive(Default)]
pub struct IdleConnections {
    by_peer: Mutex<BTreeMap<(NodeId, String), Vec<SecureStream>>>,
}

/// Idle connections kept per peer at most.
const IDLE_PER_PEER: usize = 4;

impl IdleConnections {
    fn take(&self, target: NodeId, addr: &str) -> Option<SecureStream> {
        let mut idle = self.by_peer.lock().unwrap_or_else(|p| p.into_inner());
        idle.get_mut(&(target, addr.to_string()))?.pop()
    }

    fn put(&self, target: NodeId, addr: &str, stream: SecureStream) {
        let mut idle = self.by_peer.lock().unwrap_or_else(|p| p.into_inner());
        let v = idle.entry((target, addr.to_string())).or_default();
        if v.len() < IDLE_PER_PEER {
            v.push(stream);
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            target,
            addr: node.raft.clone(),
            stream: None,
            mid_call: false,
            signer: self.signer.clone(),
            gate: self.gate.clone(),
            idle: self.idle.clone(),
            health: self.health.clone(),
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    /// A connection with no request or reply half-sent: it is dropped on any error or timeout.
    stream: Option<SecureStream>,
    /// A request was written and its whole reply not yet read (e.g. the call's future was
    /// dropped on a timeout): the connection must not be reused, by this client's next call
    /// (`exchange`) nor by another client (`Drop`), or that call would read this call's reply.
    mid_call: bool,
    signer: Arc<Signer>,
    gate: Arc<Gate>,
    idle: Arc<IdleConnections>,
    health: Arc<PeerHealth>,
}

impl Drop for PeerClient {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take().filter(|_| !self.mid_call) {
            self.idle.put(self.target, &self.addr, stream);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("connect {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Protocol(String),
}

impl PeerClient {
    async fn exchange(&mut self, body: Vec<u8>) -> Result<RaftReply, CallError> {
        if std::mem::take(&mut self.mid_call) && self.stream.take().is_some() {
            // The previous call's future was dropped between its request and its reply (openraft
            // gives up on a call at its own deadline: see `call`). That reply may still come, and
            // would be read as this call's: one reply late for ever after, the leader counted
            // entries as replicated that the follower never had, and once the follower's real
            // answer came (a conflict below them) replication to it stopped.
            tracing::debug!(peer = self.target, "dropping a connection left mid-call");
        }
        if self.stream.is_none() {
            if let Some(idle) = self.idle.take(self.target, &self.addr) {
                // The peer may have closed it since (restart, idle timeout): one failure on a
                // reused connection is retried once on a fresh one. Raft RPCs are idempotent.
                self.stream = Some(idle);
                match self.exchange_once(body.clone()).await {
                    Err(CallError::Io(_)) => self.stream = None,
                    other => return other,
                }
            }
            let s = dial_channel(&self.addr, self.target, &self.signer, &self.gate).await?;
            self.stream = Some(s);
        }
        self.exchange_once(body).await
    }

    async fn exchange_once(&mut self, body: Vec<u8>) -> Result<RaftReply, CallError> {
        let env = self.signer.envelope(self.target, body);
        let bytes = rmp_serde::to_vec(&env).map_err(|e| CallError::Protocol(e.to_string()))?;
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| CallError::Protocol("no connection".into()))?;
        self.mid_call = true;
        write_frame(stream, &bytes).await?;
        let frame = read_frame(stream).await?;
        self.mid_call = false;
        let reply: Envelope = rmp_serde::from_slice(&frame).map_err(|e| {
            self.gate.metrics.reject(Channel::Raft, Reject::Malformed);
            CallError::Protocol(e.to_string())
        })?;
        if reply.from != self.target {
            self.gate.metrics.reject(Channel::Raft, Reject::NonMember);
            return Err(CallError::Protocol(format!(
                "reply from node {} instead of {}",
                reply.from, self.target
            )));
        }
        self.gate
            .check(&reply)
            .map_err(|r| CallError::Protocol(format!("reply refused: {r}")))?;
        let reply: RaftReply =
            rmp_serde::from_slice(&reply.body).map_err(|e| CallError::Protocol(e.to_string()))?;
        if let RaftReply::Rejected(reason) = &reply {
            return Err(CallError::Protocol(format!(
                "node {} refused our message: {reason}",
                self.target
            )));
        }
        Ok(reply)
    }

    /// One request and its reply within `ttl`, which callers take from `RPCOption::soft_ttl`
    /// (3/4 of the hard TTL) as openraft asks (openraft-0.10.0-alpha.37 src/network/rpc_option.rs:
    /// the network should time out at `soft_ttl`, so that it answers before openraft may drop the
    /// call at `hard_ttl`). openraft 0.10 does drop calls there: its heartbeat worker keeps one
    /// client and wraps each heartbeat in `C::timeout(heartbeat_interval, ..)`
    /// (src/core/heartbeat/worker.rs), and our timer of the same length, started later (after the
    /// `yield_now` in `append_entries`), lost that race on a busy machine. A dropped call still
    /// costs its connection (`exchange`).
    async fn call(
        &mut self,
        req: RaftRequest,
        ttl: Duration,
    ) -> Result<RaftReply, RPCError<TypeConfig>> {
        let body = rmp_serde::to_vec(&req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let res = match tokio::time::timeout(ttl, self.exchange(body)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout),
        };
        match &res {
            Ok(_) => self.health.answered(self.target),
            Err(e) => self.health.failed(self.target, e),
        }
        res.map_err(|e| {
            self.stream = None;
            match e {
                CallError::Connect(..) => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            }
        })
    }
}

impl PeerClient {
    /// The term of the peer's saved vote (None: the peer lost its own and does not know).
    async fn current_term(&mut self, ttl: Duration) -> Result<Option<u64>, RPCError<TypeConfig>> {
        match self.call(RaftRequest::CurrentTerm, ttl).await? {
            RaftReply::CurrentTerm(term) => Ok(term),
            _ => Err(RPCError::Network(self.unexpected())),
        }
    }

    /// A reply of another kind than the request's: whatever this connection carries next cannot
    /// be trusted to answer the next request either, so it is not reused.
    fn unexpected(&mut self) -> NetworkError<TypeConfig> {
        self.stream = None;
        NetworkError::new(&std::io::Error::other("unexpected reply kind"))
    }

    /// The peer answered with an error of its own: its Raft has stopped (openraft's only error
    /// there). Whatever answered on this connection will not serve Raft again, while a restarted
    /// node listens afresh: the next call dials again rather than reuse the connection (an
    /// in-process node that was shut down and started again left a leader's replication talking
    /// to its old, stopped Raft for ever).
    fn remote(&mut self, e: RaftError<TypeConfig>) -> Unreachable<TypeConfig> {
        self.stream = None;
        Unreachable::new(&e)
    }
}

/// Time allowed per MiB of an AppendEntries beyond openraft's budget for the call, which is
/// sized for heartbeats (a slow disk, 2 cores shared by three nodes: 8 MiB/s is pessimistic).
const APPEND_MS_PER_MIB: u64 = 125;

/// How long a replication stream holds an entry-less request (a new commit index and nothing
/// else) for the stream's next request, which carries the commit index too and supersedes it.
/// See [`AppendStream`].
pub(crate) const COMMIT_LINGER: Duration = Duration::from_millis(5);

type AppendItem = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// One replication stream's requests as they are sent: openraft's, except that an entry-less
/// request that follows a request of at most one client command is held for up to
/// [`COMMIT_LINGER`], and dropped if the stream's next request starts at the same log position
/// (it then carries a commit index at least as new, and its answer acknowledges the same
/// prefix).
///
/// Why: openraft 0.10 tells followers each new commit index with a request of its own as soon as
/// an entry commits. With signed messages each one costs two signatures and two verifications
/// per follower (about 0.18 ms of CPU per write for two followers), and with one client writing
/// it ran while the next write arrived, on the same two cores. Raft needs the commit index to
/// reach followers eventually, not at once: a steady writer's next request carries it, and
/// when writes stop the held request goes out after the linger (heartbeats carry it as well).
/// Heartbeats are streams of one request, which end at once, so they are never held. After a
/// request of several commands (concurrent writers) the update goes at once: holding it always
/// cost 64 clients 6% of their writes/s, as its round trip had given the next batch time to fill.
struct AppendStream<'s, S> {
    net: &'s mut PeerClient,
    input: S,
    /// A request taken from `input` while lingering that did not supersede the held one.
    next: Option<AppendEntriesRequest<TypeConfig>>,
    /// `input` has ended (polling it again is not allowed).
    ended: bool,
    /// Client commands in the last request sent.
    last_sent: usize,
}

impl<S> AppendStream<'_, S>
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Unpin,
{
    async fn next_request(&mut self) -> Option<AppendEntriesRequest<TypeConfig>> {
        let mut req = match self.next.take() {
            Some(r) => r,
            None if self.ended => return None,
            None => self.input.next().await?,
        };
        while req.entries.is_empty() && !self.ended && self.last_sent <= 1 {
            match tokio::time::timeout(COMMIT_LINGER, self.input.next()).await {
                Err(_elapsed) => break,
                Ok(None) => self.ended = true,
                Ok(Some(later)) if later.prev_log_id == req.prev_log_id => req = later,
                Ok(Some(later)) => {
                    self.next = Some(later);
                    break;
                }
            }
        }
        Some(req)
    }

    /// Sends the next request; the stream goes on unless it failed, conflicted, was cut short
    /// (openraft starts a new stream from what the follower holds) or the input ended.
    async fn send_next(mut self, option: RPCOption) -> Option<(AppendItem, Option<Self>)> {
        let req = self.next_request().await?;
        let prev = req.prev_log_id;
        let last = req.entries.last().map(|e| e.log_id).or(prev);
        self.last_sent = req.entries.iter().map(commands_in).sum();
        let resp = match self.net.append_entries(req, option).await {
            Ok(r) => r,
            Err(e) => return Some((Err(e), None)),
        };
        let cut_short = matches!(resp, AppendEntriesResponse::PartialSuccess(p) if p != last);
        let result = resp.into_stream_result(prev, last);
        let go_on = result.is_ok() && !cut_short && !(self.ended && self.next.is_none());
        Some((Ok(result), go_on.then_some(self)))
    }
}

/// Client commands in an entry (one for blank and membership entries).
fn commands_in(e: &Entry) -> usize {
    match &e.payload {
        openraft::EntryPayload::Normal(batch) => batch.0.len(),
        _ => 1,
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    /// openraft's sequential stream (one request, its answer, the next), except that a bare
    /// commit-index update may be superseded by the request after it ([`AppendStream`]).
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, AppendItem>, RPCError<TypeConfig>>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        let stream = AppendStream {
            net: self,
            input,
            next: None,
            ended: false,
            last_sent: 0,
        };
        let answers = futures_util::stream::unfold(Some(stream), move |stream| {
            let option = option.clone();
            async move { stream?.send_next(option).await }
        });
        let answers: BoxStream<'s, AppendItem> = Box::pin(answers);
        Box::pin(async move { Ok(answers) })
    }

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (n, bytes) = append_prefix(&rpc.entries, APPEND_MAX_BYTES);
        let partial = (n < rpc.entries.len()).then(|| rpc.entries[n - 1].log_id);
        if partial.is_some() {
            tracing::debug!(
                peer = self.target,
                "AppendEntries cut to {n} of {} entries ({bytes} bytes)",
                rpc.entries.len()
            );
        }
        rpc.entries.truncate(n);
        let ttl =
            option.soft_ttl() + Duration::from_millis((APPEND_MS_PER_MIB * bytes as u64) >> 20);
        if rpc.entries.is_empty() {
            // A heartbeat, or openraft telling followers a new commit index right after the commit
            // (0.10 too sends an entry-less request when no new entries carry it): it is not
            // urgent, and on a one-thread runtime signing and sending it first delayed applying
            // the entry and answering the client by as much (one client's writes under 0.9: p50
            // 1.46 -> 1.31 ms from letting the tasks already woken run first).
            tokio::task::yield_now().await;
        }
        match self.call(RaftRequest::Append(rpc), ttl).await? {
            // The follower holds the prefix that was sent: openraft sends the rest next.
            RaftReply::Append(Ok(AppendEntriesResponse::Success)) if partial.is_some() => {
                Ok(AppendEntriesResponse::PartialSuccess(partial))
            }
            RaftReply::Append(r) => r.map_err(|e| RPCError::Unreachable(self.remote(e))),
            _ => Err(RPCError::Network(self.unexpected())),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RaftRequest::Vote(rpc), option.soft_ttl()).await? {
            RaftReply::Vote(r) => r.map_err(|e| RPCError::Unreachable(self.remote(e))),
            _ => Err(RPCError::Network(self.unexpected())),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(RaftRequest::PreVote(rpc), option.soft_ttl())
            .await?
        {
            RaftReply::PreVote(r) => r.map_err(|e| RPCError::Unreachable(self.remote(e))),
            _ => Err(RPCError::Network(self.unexpected())),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = RaftRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let res = tokio::select! {
            closed = cancel => {
                self.stream = None;
                return Err(StreamingError::Closed(closed));
            }
            r = self.call(req, option.soft_ttl()) => r,
        };
        let reply = res.map_err(|e| match e {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            RPCError::Timeout(t) => StreamingError::Timeout(t),
            RPCError::RemoteError(r) => match r.source {},
        })?;
        match reply {
            RaftReply::Snapshot(r) => r.map_err(|e| StreamingError::Unreachable(self.remote(e))),
            _ => Err(StreamingError::Network(self.unexpected())),
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;
    use crate::testutil::entry_with_command;

    fn gate_for(sender: &SigningKey) -> Gate {
        let keys = BTreeMap::from([(1, auth::public_key(&sender.verifying_key()).unwrap())]);
        Gate::new(
            2,
            "s".into(),
            Arc::new(Keyring::new(keys)),
            Arc::new(Metrics::default()),
        )
    }

    fn envelope(key: &SigningKey, from: u64, to: u64, seq: u64) -> Envelope {
        let body = b"body".to_vec();
        let sig = key
            .sign(&auth::raft_message("s", from, to, seq, &body))
            .to_bytes()
            .to_vec();
        Envelope {
            from,
            to,
            seq,
            body,
            sig,
        }
    }

    #[test]
    fn gate_refuses_and_counts() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let gate = gate_for(&k);
        let now = auth::now_micros();
        assert_eq!(gate.check(&envelope(&k, 1, 2, now)), Ok(()));
        assert_eq!(gate.check(&envelope(&k, 1, 2, now)), Err(Reject::Replay));
        // captured before this receiver started (its window is gone): still refused
        assert_eq!(
            gate.check(&envelope(&k, 1, 2, now - 10 * auth::MAX_CLOCK_SKEW_MICROS)),
            Err(Reject::Replay)
        );
        assert_eq!(
            gate.check(&envelope(&k, 1, 3, now + 1)),
            Err(Reject::WrongRecipient)
        );
        assert_eq!(
            gate.check(&envelope(&k, 7, 2, now + 2)),
            Err(Reject::NonMember)
        );
        let other = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(
            gate.check(&envelope(&other, 1, 2, now + 3)),
            Err(Reject::BadSignature)
        );
        let mut unsigned = envelope(&k, 1, 2, now + 4);
        unsigned.sig.clear();
        assert_eq!(gate.check(&unsigned), Err(Reject::Unsigned));
        assert_eq!(gate.metrics.rejected(Channel::Raft, Reject::Replay), 2);
        assert_eq!(
            gate.metrics.rejected(Channel::Raft, Reject::BadSignature),
            1
        );
    }

    /// A peer answering each vote request with the request's own vote, the first one late.
    async fn late_first_peer(listener: TcpListener, signer: Signer, gate: Gate) {
        let mut first = true;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (_, mut stream) = accept_channel(tcp, &signer, &gate).await.unwrap();
            while let Ok(frame) = read_frame(&mut stream).await {
                let env: Envelope = rmp_serde::from_slice(&frame).unwrap();
                gate.check(&env).unwrap();
                let Ok(RaftRequest::Vote(req)) = rmp_serde::from_slice(&env.body) else {
                    panic!("a vote request was expected");
                };
                if std::mem::take(&mut first) {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let reply = RaftReply::Vote(Ok(VoteResponse::new(req.vote, None, true)));
                let out = signer.envelope(env.from, rmp_serde::to_vec(&reply).unwrap());
                let bytes = rmp_serde::to_vec(&out).unwrap();
                if write_frame(&mut stream, &bytes).await.is_err() {
                    break; // the client has closed this connection
                }
            }
        }
    }

    /// Node 1 (a network factory, the side under test) and node 2 (a test peer, to be served on
    /// `listener`), each holding the other's key.
    struct Pair {
        factory: NetworkFactory,
        listener: TcpListener,
        member: Member,
        peer_signer: Signer,
        peer_gate: Gate,
    }

    async fn pair(seed: u8) -> Pair {
        let (k1, k2) = (
            SigningKey::from_bytes(&[seed; 32]),
            SigningKey::from_bytes(&[seed + 1; 32]),
        );
        let pk = |k: &SigningKey| auth::public_key(&k.verifying_key()).unwrap();
        let gate = |me: NodeId, peer: NodeId, key: &SigningKey| {
            let keys = Keyring::new(BTreeMap::from([(peer, pk(key))]));
            Gate::new(me, "s".into(), Arc::new(keys), Arc::new(Metrics::default()))
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let member = Member {
            raft: listener.local_addr().unwrap().to_string(),
            ..Default::default()
        };
        Pair {
            factory: NetworkFactory {
                signer: Arc::new(Signer::new(1, "s".into(), k1.clone())),
                gate: Arc::new(gate(1, 2, &k2)),
                idle: Arc::default(),
                health: Arc::default(),
            },
            listener,
            member,
            peer_signer: Signer::new(2, "s".into(), k2),
            peer_gate: gate(2, 1, &k1),
        }
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// What a peer received: (prev index, entries, leader commit index) per AppendEntries.
    type Seen = (Option<u64>, usize, Option<u64>);

    /// A peer that answers every AppendEntries with success and reports what it received.
    async fn recording_peer(
        listener: TcpListener,
        signer: Signer,
        gate: Gate,
        seen: tokio::sync::mpsc::UnboundedSender<Seen>,
    ) {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (_, mut stream) = accept_channel(tcp, &signer, &gate).await.unwrap();
        while let Ok(frame) = read_frame(&mut stream).await {
            let env: Envelope = rmp_serde::from_slice(&frame).unwrap();
            gate.check(&env).unwrap();
            let Ok(RaftRequest::Append(req)) = rmp_serde::from_slice(&env.body) else {
                panic!("an AppendEntries was expected");
            };
            let index = |l: Option<crate::types::LogId>| l.map(|l| l.index);
            let _ = seen.send((
                index(req.prev_log_id),
                req.entries.len(),
                index(req.leader_commit),
            ));
            let reply = RaftReply::Append(Ok(AppendEntriesResponse::Success));
            let out = signer.envelope(env.from, rmp_serde::to_vec(&reply).unwrap());
            if write_frame(&mut stream, &rmp_serde::to_vec(&out).unwrap())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    async fn next_answer(
        answers: &mut BoxStream<'_, AppendItem>,
    ) -> Option<Result<StreamAppendResult<TypeConfig>, String>> {
        answers.next().await.map(|r| r.map_err(|e| e.to_string()))
    }

    fn append(prev: u64, entries: &[u64]) -> AppendEntriesRequest<TypeConfig> {
        let at = |i: u64| (i > 0).then(|| crate::types::log_id(1, 1, i));
        AppendEntriesRequest {
            vote: openraft::Vote::new_committed(1, 1),
            prev_log_id: at(prev),
            leader_commit: at(prev),
            entries: entries.iter().map(|&i| entry_with_command(i, 10)).collect(),
        }
    }

    /// A bare commit-index update is dropped when the stream's next request follows at once
    /// (it carries the commit too), sent after COMMIT_LINGER when none follows, and sent at once
    /// after a request of several commands (concurrent writers) or in a stream of one request
    /// (a heartbeat). Every request sent is answered, in order; a dropped one is answered by the
    /// next one's answer.
    #[test]
    fn a_bare_commit_update_is_superseded_by_the_next_request() {
        current_thread().block_on(async {
            let mut p = pair(8).await;
            let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
            let server = tokio::spawn(recording_peer(
                p.listener,
                p.peer_signer,
                p.peer_gate,
                seen_tx,
            ));
            let mut client = p.factory.new_client(2, &p.member).await;
            let option = RPCOption::new(Duration::from_secs(2));
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let input = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|r| (r, rx))
            }));
            let mut answers = client.stream_append(input, option.clone()).await.unwrap();
            let matched = |i: u64| Some(Ok(Ok((i > 0).then(|| crate::types::log_id(1, 1, i)))));

            tx.send(append(0, &[1])).unwrap();
            assert_eq!(next_answer(&mut answers).await, matched(1));
            // the update for index 1, then at once the next write: only the write goes
            tx.send(append(1, &[])).unwrap();
            tx.send(append(1, &[2])).unwrap();
            assert_eq!(next_answer(&mut answers).await, matched(2));
            // an update with nothing after it goes after the linger
            tx.send(append(2, &[])).unwrap();
            assert_eq!(next_answer(&mut answers).await, matched(2));
            // after two commands in one request, the update is not held
            tx.send(append(2, &[3, 4])).unwrap();
            assert_eq!(next_answer(&mut answers).await, matched(4));
            tx.send(append(4, &[])).unwrap();
            tx.send(append(4, &[5])).unwrap();
            assert_eq!(next_answer(&mut answers).await, matched(4));
            assert_eq!(next_answer(&mut answers).await, matched(5));
            drop(tx);
            assert_eq!(next_answer(&mut answers).await, None);
            drop(answers);

            let mut received = Vec::new();
            while let Ok(s) = seen.try_recv() {
                received.push(s);
            }
            let expected: Vec<Seen> = vec![
                (None, 1, None),
                (Some(1), 1, Some(1)),
                (Some(2), 0, Some(2)),
                (Some(2), 2, Some(2)),
                (Some(4), 0, Some(4)),
                (Some(4), 1, Some(4)),
            ];
            assert_eq!(received, expected);

            // a heartbeat (a stream of one entry-less request) is answered and ends
            let heartbeat = Box::pin(futures_util::stream::once(async { append(5, &[]) }));
            let mut answers = client.stream_append(heartbeat, option).await.unwrap();
            assert_eq!(next_answer(&mut answers).await, matched(5));
            assert!(answers.next().await.is_none());
            server.abort();
        });
    }

    /// openraft may drop a call at its own deadline (0.10's heartbeat worker does, and keeps its
    /// client): the reply still on its way must not become the answer to the next call, of this
    /// client or of one that takes the connection from the idle pool.
    #[test]
    fn a_call_dropped_mid_way_leaves_no_reply_to_the_next() {
        current_thread().block_on(async {
            let mut p = pair(5).await;
            let server = tokio::spawn(late_first_peer(p.listener, p.peer_signer, p.peer_gate));
            let (factory, member) = (&mut p.factory, &p.member);
            let request = |term: u64| VoteRequest::new(openraft::Vote::new(term, 1), None);
            let option = RPCOption::new(Duration::from_secs(2));

            // a peer that does not listen is marked down once; its next answer clears that
            let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let dead = Member {
                raft: gone.local_addr().unwrap().to_string(),
                ..Default::default()
            };
            drop(gone);
            let mut to_dead = factory.new_client(2, &dead).await;
            assert!(to_dead.vote(request(1), option.clone()).await.is_err());
            assert!(factory.health.is_down(2));

            let mut client = factory.new_client(2, member).await;
            // openraft's deadline passes before the (late) reply to term 1 comes
            let dropped = tokio::time::timeout(
                Duration::from_millis(50),
                client.vote(request(1), option.clone()),
            )
            .await;
            assert!(dropped.is_err());
            let resp = client.vote(request(2), option.clone()).await.unwrap();
            assert_eq!(resp.vote, openraft::Vote::new(2, 1));
            assert!(!factory.health.is_down(2));
            drop(client); // its connection goes to the idle pool
            let mut other = factory.new_client(2, member).await;
            let resp = other.vote(request(3), option).await.unwrap();
            assert_eq!(resp.vote, openraft::Vote::new(3, 1));
            server.abort();
        });
    }
}
