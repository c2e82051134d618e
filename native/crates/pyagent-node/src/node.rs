//! Assembles a running node: storage, Raft, the peer transport, the gRPC API and /metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Signer;
use crate::config::NodeConfig;
use crate::kv::KvEngine;
use crate::metrics::Metrics;
use crate::net::{Gate, Keyring, NetworkFactory};
use crate::recovery::Recovery;
use crate::sm::Raft;
use crate::sm::StateMachineStore;
use crate::storage::LogStore;
use crate::types::{Member, NodeId};

pub use crate::shared::Shared;
use openraft::async_runtime::WatchReceiver as _;

/// Sockets bound before start, so bind errors surface early and tests can use port 0.
pub struct Listeners {
    pub raft: std::net::TcpListener,
    pub grpc: std::net::TcpListener,
    pub metrics: std::net::TcpListener,
}

impl Listeners {
    pub fn bind(cfg: &NodeConfig) -> std::io::Result<Listeners> {
        let bind = |a: SocketAddr| -> std::io::Result<std::net::TcpListener> {
            let l = std::net::TcpListener::bind(a)
                .map_err(|e| std::io::Error::new(e.kind(), format!("bind {a}: {e}")))?;
            l.set_nonblocking(true)?;
            Ok(l)
        };
        Ok(Listeners {
            raft: bind(cfg.listen_raft)?,
            grpc: bind(cfg.listen_grpc)?,
            metrics: bind(cfg.listen_metrics)?,
        })
    }
}

pub struct Node {
    pub shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    grpc: Option<JoinHandle<()>>,
    kube: Option<Arc<crate::admission::KubeApi>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage in {0}: {1}")]
    Storage(String, std::io::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("KV_v2 engine (memory.kv): {0}")]
    Kv(String),
    #[error("mesh: {0}")]
    Mesh(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub fn member_of(m: &crate::config::MemberConfig) -> Member {
    Member {
        name: m.name.clone(),
        raft: m.raft.clone(),
        grpc: m.grpc.clone(),
        public_key: m.public_key.clone().unwrap_or_default(),
    }
}

/// The voters this node knows, itself included: those of its configuration and of its Raft
/// membership (which, after damage, may be empty until the leader sends it).
fn known_voters(cfg: &NodeConfig, raft: Raft) -> impl Fn() -> BTreeMap<NodeId, Member> {
    let configured: BTreeMap<NodeId, Member> = cfg
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| (m.node_id, member_of(m)))
        .collect();
    move || {
        let mut all = configured.clone();
        let config = raft.metrics().borrow_watched().membership_config.clone();
        let membership = config.membership();
        for id in membership.voter_ids() {
            if let Some(node) = membership.get_node(&id) {
                all.insert(id, node.clone());
            }
        }
        all
    }
}

/// How long sending one snapshot to a follower may take (see `install_snapshot_timeout` below).
pub const SNAPSHOT_SEND_TIMEOUT_MS: u64 = 30_000;

pub async fn start(
    cfg: NodeConfig,
    key: SigningKey,
    listeners: Listeners,
) -> Result<Node, StartError> {
    let raft_dir = cfg.data_dir.join("raft");
    let snap_dir = cfg.data_dir.join("snapshots");
    let sm = StateMachineStore::open(&snap_dir, cfg.swarm.clone(), cfg.snapshots_kept)
        .map_err(|e| StartError::Storage(snap_dir.display().to_string(), e))?;
    let snapshot = crate::sm::read_state(&sm.state).last_applied;
    let log = LogStore::open_with(&raft_dir, snapshot)
        .map_err(|e| StartError::Storage(raft_dir.display().to_string(), e))?;
    let damage = log.damage().join("; ");
    let recovery = Arc::new(Recovery::new(
        (!damage.is_empty()).then_some(damage),
        log.vote_lost(),
    ));
    let state = sm.state.clone();
    let sigs = sm.sigs.clone();

    let mesh_key = key.clone();
    let signer = Arc::new(Signer::new(cfg.node_id, cfg.swarm.clone(), key));
    let keyring = Arc::new(initial_keyring(&cfg, &signer));
    let metrics = Arc::new(Metrics::default());
    let gate = Arc::new(Gate::new(
        cfg.node_id,
        cfg.swarm.clone(),
        keyring.clone(),
        metrics.clone(),
    ));

    let raft_config = raft_config(&cfg)?;
    let network = NetworkFactory {
        signer: signer.clone(),
        gate: gate.clone(),
        idle: Arc::default(),
        health: Arc::default(),
    };
    let log_stats = log.stats.clone();
    let raft = Raft::new(
        cfg.node_id,
        Arc::new(raft_config),
        network.clone(),
        log.clone(),
        sm,
    )
    .await
    .map_err(|e| StartError::Raft(e.to_string()))?;
    if recovery.is_recovering() {
        // Before the first election timeout can fire (it is at least election_timeout_min).
        raft.runtime_config().elect(false);
    }
    let learning_floor = recovery.needs_floor().then(|| {
        tokio::spawn(crate::net::learn_term_floor(
            network,
            cfg.node_id,
            known_voters(&cfg, raft.clone()),
            recovery.clone(),
        ))
    });

    let kv = KvEngine::new(&cfg.kv).map_err(StartError::Kv)?;
    let mesh = match &cfg.mesh {
        Some(settings) => Some(Arc::new(
            crate::mesh::start(&cfg.swarm, settings, &mesh_key, &keyring, &cfg.data_dir)
                .await
                .map_err(|e| StartError::Mesh(e.to_string()))?,
        )),
        None => None,
    };
    let (proposer, proposer_task) = crate::batching::Proposer::spawn(raft.clone());
    let (verifier, verifier_task) = crate::batching::SignatureBatcher::spawn(sigs.clone());
    let telemetry = Arc::new(start_telemetry(&cfg));
    let shared = Arc::new(Shared {
        kv,
        proposer,
        verifier,
        reads: crate::batching::ReadBarrier::new(raft.clone()),
        cfg,
        raft: raft.clone(),
        state,
        signer: signer.clone(),
        keyring: keyring.clone(),
        metrics,
        log,
        log_stats,
        sigs,
        recovery: recovery.clone(),
        mesh: mesh.clone(),
        telemetry,
    });
    let mut tasks = vec![proposer_task, verifier_task];
    let raft_listener = tokio::net::TcpListener::from_std(listeners.raft)?;
    let durable_term: crate::net::DurableTerm = {
        let log = shared.log.clone();
        Arc::new(move || log.durable_vote().map_or(0, |v| v.leader_id().term))
    };
    tasks.extend(learning_floor);
    tasks.push(tokio::spawn(crate::net::serve(
        raft_listener,
        raft.clone(),
        signer.clone(),
        gate,
        recovery.clone(),
        durable_term,
    )));
    tasks.push(tokio::spawn(crate::recovery::watch(raft.clone(), recovery)));
    tasks.push(tokio::spawn(refresh_keys(shared.clone())));
    if let Some(mesh) = mesh {
        tasks.push(tokio::spawn(crate::mesh::follow_membership(
            shared.clone(),
            mesh,
        )));
    }
    let metrics_listener = tokio::net::TcpListener::from_std(listeners.metrics)?;
    tasks.push(tokio::spawn(crate::http::serve(
        metrics_listener,
        shared.clone(),
    )));

    let (stop, stop_rx) = watch::channel(false);
    let kube = kube_client(&shared.cfg);
    if let Ok(kube) = &kube {
        tasks.push(tokio::spawn(crate::scale::remove_scaled_down(
            shared.clone(),
            kube.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::work::executor::run(
        shared.clone(),
        stop_rx.clone(),
    )));
    let kube_api = kube.as_ref().ok().cloned();
    let grpc = serve_grpc(listeners.grpc, shared.clone(), kube, stop_rx)?;

    let seed_must_join = shared.cfg.kubernetes.is_some()
        && !shared.cfg.join
        && !initialized(&shared).await?
        && crate::join::group_exists(&shared).await;
    if !seed_must_join && bootstrap_if_first(&shared).await? {
        tasks.push(tokio::spawn(add_initial_learners(shared.clone())));
    }
    if shared.cfg.kubernetes.is_some() && (shared.cfg.join || seed_must_join) {
        tasks.push(tokio::spawn(crate::join::join_until_member(shared.clone())));
    }
    Ok(Node {
        shared,
        tasks,
        stop,
        grpc: Some(grpc),
        kube: kube_api,
    })
}

/// The keys of the configured members, and our own, until the replicated membership replaces
/// them ([`refresh_keys`]).
fn initial_keyring(cfg: &NodeConfig, signer: &Signer) -> Keyring {
    let members: BTreeMap<NodeId, Member> = cfg
        .members
        .iter()
        .map(|m| (m.node_id, member_of(m)))
        .collect();
    let mut keys = Keyring::keys_from_members(members.iter());
    keys.insert(cfg.node_id, signer.public_key());
    Keyring::new(keys)
}

/// openraft's settings for this node, from the spec's `consensus` section and what these
/// nodes need beyond openraft's defaults (each with its reason).
fn raft_config(cfg: &NodeConfig) -> Result<Config, StartError> {
    Config {
        cluster_name: cfg.swarm.clone(),
        election_timeout_min: cfg.election_timeout_ms.0,
        election_timeout_max: cfg.election_timeout_ms.1,
        heartbeat_interval: cfg.heartbeat_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every_entries),
        max_in_snapshot_log_to_keep: cfg.snapshot_every_entries.min(1000),
        // A leader that restarts has to win an election like any node, rather than resume its
        // term as openraft 0.10 does by default (and 0.9 always did). openraft-0.10.0-alpha.37
        // src/config/config.rs `enable_leader_restore` warns that resuming can serve a stale
        // state machine when the committed log id is not persisted, and ours is a hint written
        // at most every 100 ms (storage.rs): in the nemesis a leader killed and restarted within
        // an election timeout resumed its term with the hint at 8399 and its log at 8493, its
        // state machine re-applied up to 8399 only, and a linearizable read's index is
        // max(the term's first entry, committed) (src/engine/handler/leader_handler/mod.rs).
        // A new term's blank entry must commit first, which brings the commit index up to all
        // that was acknowledged. Resuming the same term may also re-propose, under log ids the
        // followers already hold, indexes whose entries it had sent and then lost unwritten.
        enable_leader_restore: Some(false),
        // 0.10 sends a snapshot whole, as one signed frame (up to net::MAX_FRAME, 256 MiB), and
        // gives the send `install_snapshot_timeout`: by default 200 ms, in which a state of some
        // tens of MiB cannot be signed, sent, checked and written, so a follower that needed a
        // snapshot was sent it again and again and never caught up (tests/cluster.rs, with
        // 80 MiB). The bound is for a peer that hangs mid-transfer; one that is down fails at
        // once on connect.
        install_snapshot_timeout: SNAPSHOT_SEND_TIMEOUT_MS,
        // A follower whose log went backwards (damage found at its start-up: storage.rs) is
        // re-replicated from where it now is. Without this, openraft 0.10 leaves the leader's
        // progress for it where it was (a `debug_assert`, compiled out in release): the leader
        // sent from the old position for ever and the follower refused it for ever (issue 24).
        // Safe: openraft keeps the commit index that a quorum had reached (`reset_entry_with`,
        // src/progress/entry/update.rs) and ignores acknowledgements sent before the reset; the
        // danger of a node that forgot entries is its vote, which recovery.rs withholds.
        allow_log_reversion: Some(true),
        // Pre-vote: a node asks whether it could win before it raises its term. openraft 0.10
        // leaves it off by default (`get_enable_pre_vote`, src/config/config.rs), which is why
        // two nodes cut off from three raised their term from 103 to 145 in 10 s (issue 24):
        // every election timeout, each started a real election. With it, a minority's terms
        // stay where they were, and it does not depose the leader when it comes back.
        enable_pre_vote: Some(true),
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Raft(e.to_string()))
}

/// The Kubernetes API client of a pod (membership mode kubernetes), or why there is none.
type KubeClient = Result<Arc<crate::admission::KubeApi>, String>;

fn kube_client(cfg: &NodeConfig) -> KubeClient {
    if cfg.kubernetes.is_none() {
        return Err("the membership is static".to_string());
    }
    let kube = crate::admission::KubeApi::in_cluster().map(Arc::new);
    if let Err(e) = &kube {
        tracing::warn!(reason = %e, "no Kubernetes API client: this node cannot admit joiners");
    }
    kube
}

/// The gRPC API on `listener`, until `stop` turns true.
fn serve_grpc(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    kube: KubeClient,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    let grpc_listener = tokio::net::TcpListener::from_std(listener)?;
    let api = crate::api::Api { shared, kube };
    Ok(tokio::spawn(async move {
        let res = tonic::transport::Server::builder()
            .add_service(crate::proto::node_server::NodeServer::new(api))
            .serve_with_incoming_shutdown(
                // Nagle's algorithm on the accepted sockets holds back a response's last frame
                // until the client's delayed ACK (~40 ms); tonic does not set TCP_NODELAY on
                // sockets from a listener we hand it.
                tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    }))
}

async fn initialized(shared: &Shared) -> Result<bool, StartError> {
    shared
        .raft
        .is_initialized()
        .await
        .map_err(|e| StartError::Raft(e.to_string()))
}

/// Initialises the Raft group with the configured voters when this node is the one that does
/// it and the group is new; true if it did.
async fn bootstrap_if_first(shared: &Shared) -> Result<bool, StartError> {
    let raft = &shared.raft;
    // A bootstrapper whose Raft state was lost must not found a second group: it waits to be
    // contacted like the others.
    if !shared.cfg.is_bootstrapper()
        || shared.recovery.is_recovering()
        || raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?
    {
        return Ok(false);
    }
    let voters: BTreeMap<NodeId, Member> = shared
        .cfg
        .initial_voters()
        .map(|m| (m.node_id, member_of(m)))
        .collect();
    tracing::info!(voters = ?voters.keys().collect::<Vec<_>>(), "initialising the Raft group");
    raft.initialize(voters)
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
    Ok(true)
}

/// Keeps the keyring equal to the keys in the latest Raft membership (plus our own).
async fn refresh_keys(shared: Arc<Shared>) {
    let mut rx = shared.raft.metrics();
    // Raft metrics change on every commit; the keys only when the membership (named by the log
    // id of its entry) does, and decoding them costs a point decompression each.
    let mut seen: Option<Option<crate::types::LogId>> = None;
    loop {
        let keys = {
            let m = rx.borrow_and_update();
            let membership = m.membership_config.membership();
            let id = *m.membership_config.log_id();
            if membership.nodes().next().is_none() || seen == Some(id) {
                None
            } else {
                seen = Some(id);
                let mut keys = Keyring::keys_from_members(membership.nodes());
                keys.insert(shared.cfg.node_id, shared.signer.public_key());
                Some(keys)
            }
        };
        if let Some(keys) = keys {
            shared.keyring.replace(keys);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The bootstrapper adds the configuration's non-voters as learners once it leads.
async fn add_initial_learners(shared: Arc<Shared>) {
    let learners: Vec<_> = shared
        .cfg
        .members
        .iter()
        .filter(|m| !m.voter)
        .cloned()
        .collect();
    if learners.is_empty() {
        return;
    }
    // A leader may change the membership only once the current one is known committed (openraft
    // answers "already undergoing a configuration change" before), which a new leader learns by
    // committing its first entry: waiting for Leader alone made the first add fail.
    let wait = shared
        .raft
        .wait(Some(Duration::from_secs(60)))
        .metrics(
            |m| {
                m.state == ServerState::Leader
                    && m.committed_membership_config.log_id() == m.membership_config.log_id()
            },
            "leader with a committed membership",
        )
        .await;
    if wait.is_err() {
        return;
    }
    let raft = &shared.raft;
    for m in learners {
        // The lease may still have lapsed meanwhile (see `while_lease_pending`).
        let add = || raft.add_learner(m.node_id, member_of(&m), false);
        if let Err(e) = crate::batching::while_lease_pending(raft, add).await {
            tracing::warn!(node = m.node_id, error = %e, "could not add learner");
        }
    }
}

impl Node {
    /// In a pod that a scale-down takes away, waits (bounded) until the leader has removed this
    /// node from the membership; elsewhere returns at once (`scale::stay_until_removed`).
    pub async fn leave_if_scaled_down(&self) {
        if let Some(kube) = &self.kube {
            crate::scale::stay_until_removed(&self.shared, kube).await;
        }
    }

    /// Stops serving and shuts Raft down.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(g) = self.grpc.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), g).await;
        }
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.shared.raft.shutdown().await;
        let telemetry = self.shared.telemetry.clone();
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
}

/// The exporter of task traces, if the spec names a receiver. A receiver that cannot be set up
/// costs the node its traces, never its work: said in the log, and the node goes on.
fn start_telemetry(cfg: &NodeConfig) -> crate::telemetry::Telemetry {
    use crate::telemetry::{Origin, Telemetry};
    let Some(endpoint) = &cfg.traces_endpoint else {
        return Telemetry::disabled();
    };
    let origin = Origin {
        swarm: &cfg.swarm,
        pool: &cfg.pool,
        node_name: &cfg.name,
        node_id: cfg.node_id,
    };
    match Telemetry::start(endpoint, &origin) {
        Ok(t) => {
            tracing::info!(endpoint = %endpoint, "exporting task traces over OTLP");
            t
        }
        Err(e) => {
            tracing::error!(error = %e, "task traces will not be exported");
            Telemetry::disabled()
        }
    }
}
