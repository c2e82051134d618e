//! What the services of a running node share: its configuration, Raft, the replicated state and
//! the handles of the batching tasks. `node` builds it; `api` and `http` read it. It lives apart
//! from `node` so that those services do not depend on the module that starts them.

use std::sync::Arc;

use crate::auth::Signer;
use crate::config::NodeConfig;
use crate::kv::KvEngine;
use crate::metrics::Metrics;
use crate::net::Keyring;
use crate::sm::{Raft, SharedState};
use crate::storage::{LogStats, LogStore};

/// What the API, the metrics endpoint and tests share.
pub struct Shared {
    pub cfg: NodeConfig,
    pub raft: Raft,
    pub state: SharedState,
    pub signer: Arc<Signer>,
    pub keyring: Arc<Keyring>,
    pub metrics: Arc<Metrics>,
    pub log: LogStore,
    pub log_stats: Arc<LogStats>,
    pub sigs: Arc<crate::auth::SigCache>,
    pub kv: KvEngine,
    pub proposer: crate::batching::Proposer,
    pub verifier: crate::batching::SignatureBatcher,
    pub reads: Arc<crate::batching::ReadBarrier>,
    /// Whether this node is rejoining after damage to its Raft state (recovery.rs).
    pub recovery: Arc<crate::recovery::Recovery>,
    /// The P2P mesh (mesh.rs); None only where a test runs Raft alone.
    pub mesh: Option<Arc<pyagent_mesh::Mesh>>,
    /// Task traces to the spec's OTLP endpoint (telemetry.rs); inert without one.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

impl Shared {
    pub fn committed_index(&self) -> u64 {
        self.log.committed_index()
    }

    /// Why this node is not ready (`/healthz`, `Status`), or None.
    pub fn health(&self) -> Option<String> {
        use openraft::async_runtime::WatchReceiver as _;
        let m = self.raft.metrics().borrow_watched().clone();
        let applied = m.last_applied.map_or(0, |l| l.index);
        let is_leader = m.current_leader == Some(self.cfg.node_id);
        self.recovery.health(m.current_leader, applied, is_leader)
    }
}
