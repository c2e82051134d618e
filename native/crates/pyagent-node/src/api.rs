//! The client gRPC API (`pyagent.node.v1.Node`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use prost::Message as _;
use tonic::{Request, Response, Status};

use crate::auth::Reject;
use crate::batching::while_lease_pending;
use crate::metrics::{Channel, Metrics};
use crate::proto::{self, command::Op, node_server};
use crate::shared::Shared;
use crate::sm::read_state;
use crate::types::{LogCommand, Member, NodeId, TypeConfig};

/// How long AddMember waits for the new node to catch up before answering DEADLINE_EXCEEDED.
pub const ADD_MEMBER_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Api {
    pub shared: Arc<Shared>,
    /// The Kubernetes API client that admits joiners (membership mode kubernetes), or why
    /// there is none (then every Join is refused with that reason).
    pub kube: Result<Arc<crate::admission::KubeApi>, String>,
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

    pub(crate) async fn membership_change(&self, op: Op) -> Result<proto::CommandResult, Status> {
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

impl Api {
    /// The checks of a Join short of the Kubernetes API: this swarm admits pods, this node
    /// leads, the request is well formed and signed by the key it brings, and the member entry
    /// is the one its node id derives.
    fn check_join(&self, r: &proto::JoinRequest) -> Result<proto::Member, Status> {
        let k = self.shared.cfg.kubernetes.as_ref().ok_or_else(|| {
            Status::permission_denied(
                "this swarm's membership is static: members are added with AddMember",
            )
        })?;
        let metrics = self.shared.raft.metrics().borrow_watched().clone();
        if metrics.state != ServerState::Leader {
            return Err(self.not_leader(metrics.current_leader));
        }
        let m = r
            .member
            .clone()
            .ok_or_else(|| Status::invalid_argument("member is missing"))?;
        let key = crate::auth::decode_member_key(&m.public_key)
            .ok_or_else(|| Status::invalid_argument("member.public_key is not a valid key"))?;
        let message = crate::auth::join_message(&self.shared.cfg.swarm, m.node_id, &r.token);
        crate::auth::verify(&key, &message, &r.signature)
            .map_err(|e| Status::permission_denied(format!("join refused: signature: {e}")))?;
        crate::admission::expected_member(k, &m)
            .map_err(|e| Status::permission_denied(format!("join refused: {e}")))?;
        Ok(m)
    }

    /// Whether `m` is a member already: Some(true) with the same key (and as a voter if it should
    /// be one), Some(false) with another key, None if not (or a learner still to promote).
    fn member_with_key(&self, m: &proto::Member) -> Option<bool> {
        let metrics = self.shared.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let same_key = membership
            .get_node(&m.node_id)
            .map(|n| n.public_key == m.public_key)?;
        let promoted = !m.voter || membership.voter_ids().any(|v| v == m.node_id);
        match (same_key, promoted) {
            (true, false) => None,
            (same, _) => Some(same),
        }
    }
}

#[tonic::async_trait]
impl node_server::Node for Api {
    async fn join(
        &self,
        request: Request<proto::JoinRequest>,
    ) -> Result<Response<proto::CommandResult>, Status> {
        let r = request.into_inner();
        let m = self.check_join(&r)?;
        let kube = self.kube.as_ref().map_err(|e| {
            Status::permission_denied(format!(
                "join refused: cannot reach the Kubernetes API: {e}"
            ))
        })?;
        let k = self
            .shared
            .cfg
            .kubernetes
            .as_ref()
            .expect("checked by check_join");
        if let Err(e) = kube.admit(k, &m, &r.token).await {
            tracing::warn!(node = m.node_id, name = %m.name, reason = %e, "join refused");
            return Err(Status::permission_denied(format!("join refused: {e}")));
        }
        match self.member_with_key(&m) {
            Some(true) => {
                return Ok(Response::new(proto::CommandResult {
                    applied: true,
                    message: "already a member".into(),
                    ..Default::default()
                }))
            }
            Some(false) => {
                // The pod lost its volume and made a new key: the old identity goes first.
                tracing::warn!(
                    node = m.node_id,
                    "member rejoins with a new key; removing the old one"
                );
                let remove = proto::RemoveMember { node_id: m.node_id };
                self.membership_change(Op::RemoveMember(remove)).await?;
            }
            None => {}
        }
        tracing::info!(node = m.node_id, name = %m.name, voter = m.voter, "admitting a pod");
        let add = proto::AddMember { member: Some(m) };
        self.membership_change(Op::AddMember(add))
            .await
            .map(Response::new)
    }

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

    async fn describe_task(
        &self,
        request: Request<proto::DescribeTaskRequest>,
    ) -> Result<Response<proto::TaskView>, Status> {
        let req = request.into_inner();
        self.linearize(req.stale).await?;
        Ok(Response::new(describe(&self.shared, &req.id)))
    }

    async fn list_tasks(
        &self,
        request: Request<proto::ListTasksRequest>,
    ) -> Result<Response<proto::ListTasksResponse>, Status> {
        self.linearize(request.into_inner().stale).await?;
        let st = read_state(&self.shared.state);
        let mut tasks: Vec<&crate::work::WorkTask> = st.work.tasks.values().collect();
        tasks.sort_by_key(|t| t.submitted_index);
        Ok(Response::new(proto::ListTasksResponse {
            tasks: tasks
                .into_iter()
                .map(crate::work::view::task_view)
                .collect(),
        }))
    }

    type WatchTaskStream = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<proto::TaskView, Status>> + Send + 'static>,
    >;

    async fn watch_task(
        &self,
        request: Request<proto::DescribeTaskRequest>,
    ) -> Result<Response<Self::WatchTaskStream>, Status> {
        let req = request.into_inner();
        self.linearize(req.stale).await?;
        let shared = self.shared.clone();
        // (last revision sent, ended): one view per change, the stream ends after a final one.
        let applied = crate::work::executor::Applied::new(&shared.raft);
        let stream = futures_util::stream::unfold(
            (shared, req.id, None::<u64>, false, applied),
            |(shared, id, sent, ended, mut applied)| async move {
                if ended {
                    return None;
                }
                loop {
                    let view = describe(&shared, &id);
                    if sent != Some(view.revision) || !view.found {
                        let done = !view.found || TASK_FINAL.contains(&view.state.as_str());
                        let revision = Some(view.revision);
                        return Some((Ok(view), (shared, id, revision, done, applied)));
                    }
                    applied.next(WATCH_POLL).await;
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let mut answer = status(&self.shared);
        answer.mesh_peer_ids = mesh_peer_ids(&self.shared).await;
        Ok(Response::new(answer))
    }
}

/// Which members this node holds a mesh connection with (the dashboard draws them); empty when
/// the mesh does not answer within a moment (it is busy or stopping: the status goes on).
async fn mesh_peer_ids(shared: &Shared) -> Vec<u64> {
    let Some(mesh) = &shared.mesh else {
        return Vec::new();
    };
    let peers = tokio::time::timeout(std::time::Duration::from_secs(1), mesh.peers()).await;
    let mut ids: Vec<u64> = match peers {
        Ok(Ok(peers)) => peers
            .iter()
            .map(|p| p.node_id)
            .filter(|id| *id != 0)
            .collect(),
        _ => Vec::new(),
    };
    ids.sort_unstable();
    ids.dedup();
    ids
}

const TASK_FINAL: &[&str] = &["succeeded", "failed", "cancelled"];
/// The longest a watch goes without looking at the applied state for a change of its task; it
/// wakes when an entry is applied, so this is a fallback.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(20);

fn describe(shared: &Shared, id: &str) -> proto::TaskView {
    let st = read_state(&shared.state);
    st.work
        .tasks
        .get(id)
        .map(crate::work::view::task_view)
        .unwrap_or_default()
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
        mesh_peers: shared
            .mesh
            .as_ref()
            .map_or(0, |m| u32::try_from(m.stats().peers).unwrap_or(u32::MAX)),
        unhealthy: shared.health().unwrap_or_default(),
        // Asked of the mesh's task by the gRPC handler (it is async); /healthz needs none.
        mesh_peer_ids: Vec::new(),
    }
}
