//! `node.json` as written, field for field: the serde mirror of the compiler's
//! `pyagent_compile/contracts/node_config.py` (schema: specs/node-config.schema.json).
//!
//! Every struct refuses unknown fields, so a key the compiler adds that this daemon does not know
//! is an error at start, never silently ignored; a change of shape is a new apiVersion. Checks
//! of values (ranges, addresses, keys) belong to `config::parse`, which turns this into the
//! daemon's [`super::NodeConfig`].

use serde::Deserialize;

pub const API_VERSION: &str = "pyagent.dev/node/v1alpha3";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document {
    pub api_version: String,
    pub swarm: String,
    pub pool: String,
    pub roles: Vec<String>,
    pub cores: Vec<String>,
    pub data_dir: String,
    pub ports: Ports,
    pub listen: Option<Listen>,
    pub discovery: Discovery,
    pub consensus: Consensus,
    pub memory: Memory,
    pub sovereignty: Sovereignty,
    pub runtime: Runtime,
    pub membership: Membership,
    /// Set on nodes whose pool has the `worker` role: they run tasks.
    pub work: Option<Work>,
    /// Where the node exports its traces (`observability.traces`); none: it exports none.
    #[serde(default)]
    pub traces: Option<Traces>,
}

/// OTLP export of task traces (telemetry.rs).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Traces {
    /// An OTLP/gRPC receiver: `http://host:port` (an OpenTelemetry Collector's 4317).
    pub otlp_endpoint: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub mesh: u16,
    pub raft: u16,
    pub grpc: u16,
    pub metrics: u16,
}

/// The local target's loopback addresses; a pod listens on every interface on `ports`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub raft: String,
    pub grpc: String,
    pub metrics: String,
    pub mesh: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryMode {
    Static,
    Dns,
    Mdns,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    pub mode: DiscoveryMode,
    /// The headless Service's name: every pod's mesh address, on `ports.mesh` (Kubernetes).
    pub dns: Option<String>,
    /// Other members' mesh addresses (the local target).
    pub seeds: Vec<String>,
    pub neighbours: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Consensus {
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_ms: u64,
    pub snapshot_every_entries: u64,
    pub snapshots_kept: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KvMemory {
    pub block_size: u64,
    pub blocks: u64,
    pub eviction: String,
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Memory {
    pub kv: KvMemory,
    pub decay_half_life_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sovereignty {
    pub jurisdiction: Option<String>,
    pub owner_public_key: Option<String>,
    pub soul_key_file: Option<String>,
    pub peer_share: String,
    pub trusted_peers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Runtime {
    pub worker_threads: Option<u64>,
}

/// What this node offers to run tasks (docs/tasks.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Work {
    /// `work.json` (`pyagent.dev/work/v1alpha1`): the manifests and cores, for delegation.
    pub file: String,
    pub max_tasks: u32,
    pub capacity: WorkCapacity,
    /// The least sandbox isolation a step may run with: namespaces, landlock-seccomp,
    /// limits-only.
    pub min_isolation: String,
    /// A task's ownership lasts this long without a heartbeat from this node.
    pub lease_ms: u64,
    /// Disk quota of a task's workspace.
    pub workspace_bytes: u64,
    /// The OCI image layout holding the images of `sandbox` steps (relative to this file's
    /// folder, or absolute); none: a step with an image fails (PA728).
    #[serde(default)]
    pub image_layout: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkCapacity {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub gpu_memory_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Membership {
    Static(StaticMembership),
    Kubernetes(KubernetesMembership),
}

/// Every member known in advance (the local target); keys may come from `--members`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticMembership {
    pub node_id: u64,
    pub name: String,
    pub join: bool,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    pub node_id: u64,
    pub name: String,
    pub raft: String,
    pub grpc: String,
    pub voter: bool,
    pub public_key: Option<String>,
}

/// The pods of the swarm's StatefulSets, named by the headless Service.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesMembership {
    pub namespace: String,
    pub service: String,
    pub cluster_domain: String,
    pub service_account: String,
    pub pools: Vec<KubernetesPool>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesPool {
    pub name: String,
    pub stateful_set: String,
    pub index: u64,
    /// The replica count is read from the live StatefulSet when a pod is admitted.
    pub voter: bool,
}

/// The `--members` file: keys (and addresses) of the static members, made at `pyagent up`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersFile {
    pub members: Vec<Member>,
}
