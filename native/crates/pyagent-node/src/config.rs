//! The node configuration (`node.json`, rendered by the compiler) and its validation.
//!
//! Every problem is reported as one [`ConfigError`] naming the dotted key, so `main` can print it
//! and exit with code 2 instead of panicking.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod contract;
use contract::Document;
pub use contract::API_VERSION;

#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {key}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub key: String,
    pub message: String,
}

/// One member of the swarm as the configuration describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    pub node_id: u64,
    pub name: String,
    pub raft: String,
    pub grpc: String,
    pub voter: bool,
    pub public_key: Option<String>,
}

// `memory.kv` is the KV engine's own configuration; it is declared there, so that the engine
// needs nothing from this module and the two do not depend on each other.
pub use crate::kv::KvConfig;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub swarm: String,
    pub pool: String,
    pub node_id: u64,
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_raft: SocketAddr,
    pub listen_grpc: SocketAddr,
    pub listen_metrics: SocketAddr,
    pub members: Vec<MemberConfig>,
    pub join: bool,
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_ms: u64,
    pub snapshot_every_entries: u64,
    pub snapshots_kept: u64,
    pub kv: KvConfig,
    /// Threads of the async runtime; None: one per CPU. 1 runs everything on one thread (a
    /// current-thread runtime), for nodes that share a machine with others.
    pub worker_threads: Option<usize>,
    /// Set when the members are the pods of the swarm's StatefulSets (`membership.mode:
    /// kubernetes`): this node's own entry is its only configured member, its key is made on
    /// first start, and it joins through the seed unless it is the seed.
    pub kubernetes: Option<KubernetesIdentity>,
    /// Set when this node runs tasks (its pool has the `worker` role).
    pub work: Option<WorkConfig>,
    pub cores: Vec<String>,
    /// The P2P mesh (docs/mesh.md); None only where a test runs Raft alone.
    pub mesh: Option<MeshSettings>,
    /// The OTLP/gRPC receiver of task traces (`http://host:port`); None: no traces exported.
    pub traces_endpoint: Option<String>,
}

/// `discovery` and the mesh port, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshSettings {
    pub listen: SocketAddr,
    /// Other members' mesh addresses (the local target).
    pub seeds: Vec<SocketAddr>,
    /// The headless Service's name and the mesh port: every pod's mesh address (Kubernetes).
    pub dns: Option<(String, u16)>,
    pub neighbours: u32,
    /// `discovery.mode: mdns`: the mesh also finds members by mDNS (docs/mesh.md).
    pub mdns: bool,
}

/// The `work` section, with its file resolved like `dataDir`.
#[derive(Debug, Clone)]
pub struct WorkConfig {
    pub file: PathBuf,
    pub max_tasks: u32,
    pub capacity: contract::WorkCapacity,
    pub min_isolation: String,
    pub lease_ms: u64,
    pub workspace_bytes: u64,
    /// The OCI image layout of step images, resolved.
    pub image_layout: Option<PathBuf>,
}

/// Who this pod is in the swarm's StatefulSets, and how to reach the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesIdentity {
    pub membership: contract::KubernetesMembership,
    pub pool: contract::KubernetesPool,
    pub ordinal: u64,
    pub ports: (u16, u16),
}

impl KubernetesIdentity {
    /// The stable DNS name of pod `ordinal` of `stateful_set` (the headless Service's record).
    pub fn pod_host(&self, stateful_set: &str, ordinal: u64) -> String {
        let m = &self.membership;
        format!(
            "{stateful_set}-{ordinal}.{}.{}.svc.{}",
            m.service, m.namespace, m.cluster_domain
        )
    }

    /// (node id, raft address, gRPC address) of the seed: ordinal 0 of the first pool with
    /// voters. It alone initialises the Raft group; every other pod joins through it.
    pub fn seed(&self) -> Option<(u64, String, String)> {
        let pool = self
            .membership
            .pools
            .iter()
            .filter(|p| p.voter)
            .min_by_key(|p| p.index)?;
        let host = self.pod_host(&pool.stateful_set, 0);
        Some((
            node_id_of(pool.index, 0),
            format!("{host}:{}", self.ports.0),
            format!("{host}:{}", self.ports.1),
        ))
    }

    /// The pool and ordinal of node `id`, if its id is one of the swarm's pools' (whether the
    /// StatefulSet has that many replicas now is for the Kubernetes API to say).
    pub fn pod_of(&self, id: u64) -> Option<(&contract::KubernetesPool, u64)> {
        let zero_based = id.checked_sub(1)?;
        let (index, ordinal) = (zero_based / POOL_ID_STRIDE, zero_based % POOL_ID_STRIDE);
        let pool = self.membership.pools.iter().find(|p| p.index == index)?;
        Some((pool, ordinal))
    }
}

/// Node id of pod `ordinal` of pool `index`.
pub fn node_id_of(index: u64, ordinal: u64) -> u64 {
    index * POOL_ID_STRIDE + ordinal + 1
}

impl NodeConfig {
    /// The members that form the first configuration (voters).
    pub fn initial_voters(&self) -> impl Iterator<Item = &MemberConfig> {
        self.members.iter().filter(|m| m.voter)
    }

    /// True if this node is the one that initialises a fresh cluster.
    pub fn is_bootstrapper(&self) -> bool {
        !self.join && self.initial_voters().map(|m| m.node_id).min() == Some(self.node_id)
    }

    pub fn me(&self) -> Option<&MemberConfig> {
        self.members.iter().find(|m| m.node_id == self.node_id)
    }
}

fn err(source: &str, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        source_name: source.to_string(),
        key: key.to_string(),
        message: message.into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads a document into `T`, naming the key of the first problem (serde's message is kept: it
/// names the expected type or the known fields).
fn read_typed<T: serde::de::DeserializeOwned>(source: &str, v: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { "(document)".into() } else { key };
        err(source, &key, e.into_inner().to_string())
    })
}

/// The document's apiVersion, checked before its fields: a document of another version gets
/// one clear error instead of a list of unknown fields.
fn check_api_version(source: &str, v: &Value) -> Result<(), ConfigError> {
    match v.get("apiVersion") {
        Some(Value::String(s)) if s == API_VERSION => Ok(()),
        Some(Value::String(s)) => Err(err(
            source,
            "apiVersion",
            format!(
                "expected {API_VERSION:?}, found {s:?} (recompile the stack with this pyagent)"
            ),
        )),
        Some(other) => Err(err(
            source,
            "apiVersion",
            format!("expected a string, found {}", kind(other)),
        )),
        None => Err(err(source, "apiVersion", "missing")),
    }
}

fn check_member(
    source: &str,
    path: &str,
    m: &contract::Member,
) -> Result<MemberConfig, ConfigError> {
    if m.node_id == 0 {
        return Err(err(source, &format!("{path}.nodeId"), "must be at least 1"));
    }
    if let Some(key) = &m.public_key {
        crate::identity::decode_public_key(key)
            .map_err(|e| err(source, &format!("{path}.publicKey"), e.to_string()))?;
    }
    for (field, value) in [("name", &m.name), ("raft", &m.raft), ("grpc", &m.grpc)] {
        if value.is_empty() {
            return Err(err(source, &format!("{path}.{field}"), "must not be empty"));
        }
    }
    Ok(MemberConfig {
        node_id: m.node_id,
        name: m.name.clone(),
        raft: m.raft.clone(),
        grpc: m.grpc.clone(),
        voter: m.voter,
        public_key: m.public_key.clone(),
    })
}

fn check_members(
    source: &str,
    path: &str,
    list: &[contract::Member],
) -> Result<Vec<MemberConfig>, ConfigError> {
    let mut out: Vec<MemberConfig> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let member = check_member(source, &p, m)?;
        if out.iter().any(|o| o.node_id == member.node_id) {
            return Err(err(
                source,
                &format!("{p}.nodeId"),
                format!("duplicate node id {}", member.node_id),
            ));
        }
        out.push(member);
    }
    Ok(out)
}

/// Node ids of pool `index` start at `index * POOL_ID_STRIDE + 1` (Kubernetes, where the id is
/// derived from the pod's ordinal).
pub const POOL_ID_STRIDE: u64 = 1000;

/// More runtime threads than this are clamped (a typo must not start thousands of threads).
pub const MAX_WORKER_THREADS: usize = 256;

/// The ordinal of a StatefulSet pod `<stateful_set>-<ordinal>`.
pub fn ordinal_of(pod: &str, stateful_set: &str) -> Option<u64> {
    let ordinal = pod.strip_prefix(stateful_set)?.strip_prefix('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ordinal.parse().ok()
}

/// The static members overlaid by the `--members` file (keys, addresses, roles); this node
/// must be listed and every member must have a public key.
fn static_members(
    source: &str,
    m: &contract::StaticMembership,
    members_override: Option<(&str, &str)>,
) -> Result<Vec<MemberConfig>, ConfigError> {
    let mut members = check_members(source, "membership.members", &m.members)?;
    if let Some((msource, mtext)) = members_override {
        let mv: Value = serde_json::from_str(mtext)
            .map_err(|e| err(msource, "(document)", format!("invalid JSON: {e}")))?;
        let file: contract::MembersFile = read_typed(msource, mv)?;
        for e in check_members(msource, "members", &file.members)? {
            match members.iter_mut().find(|m| m.node_id == e.node_id) {
                Some(m) => {
                    let key = e.public_key.or(m.public_key.take());
                    *m = MemberConfig {
                        public_key: key,
                        ..e
                    };
                }
                None => members.push(e),
            }
        }
    }
    if !members.iter().any(|x| x.node_id == m.node_id) {
        return Err(err(
            source,
            "membership.members",
            format!("does not list this node (nodeId {})", m.node_id),
        ));
    }
    if let Some(i) = members.iter().position(|x| x.public_key.is_none()) {
        return Err(err(
            source,
            &format!("membership.members[{i}].publicKey"),
            format!(
                "missing for node {} (run `pyagent-node keygen` and pass --members)",
                members[i].node_id
            ),
        ));
    }
    if !m.join && !members.iter().any(|x| x.voter) {
        return Err(err(source, "membership.members", "no member is a voter"));
    }
    Ok(members)
}

/// This pod's place in the swarm's StatefulSets, from its name (`POD_NAME`, set by the pod spec
/// from `metadata.name`); its single configured member is itself, without a key yet (the key is
/// made in its volume on first start, `identity::load_or_create`).
fn kubernetes_identity(
    source: &str,
    doc: &Document,
    m: &contract::KubernetesMembership,
    pod_name: Option<&str>,
) -> Result<(KubernetesIdentity, MemberConfig), ConfigError> {
    let pool = m.pools.iter().find(|p| p.name == doc.pool).ok_or_else(|| {
        err(
            source,
            "membership.pools",
            format!("does not list this node's pool {:?}", doc.pool),
        )
    })?;
    let pod = pod_name.ok_or_else(|| {
        err(
            source,
            "membership",
            "POD_NAME is not set (the pod spec sets it from metadata.name)",
        )
    })?;
    let ordinal = ordinal_of(pod, &pool.stateful_set)
        .filter(|o| *o < POOL_ID_STRIDE)
        .ok_or_else(|| {
            err(
                source,
                "membership",
                format!(
                    "POD_NAME {pod:?} is not a pod of StatefulSet {:?}",
                    pool.stateful_set
                ),
            )
        })?;
    let identity = KubernetesIdentity {
        membership: m.clone(),
        pool: pool.clone(),
        ordinal,
        ports: (doc.ports.raft, doc.ports.grpc),
    };
    let host = identity.pod_host(&pool.stateful_set, ordinal);
    let me = MemberConfig {
        node_id: node_id_of(pool.index, ordinal),
        name: pod.to_string(),
        raft: format!("{host}:{}", doc.ports.raft),
        grpc: format!("{host}:{}", doc.ports.grpc),
        voter: pool.voter,
        public_key: None,
    };
    Ok((identity, me))
}

fn socket_addr(source: &str, key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        err(
            source,
            key,
            format!("expected \"host:port\" with an IP address, found {s:?}"),
        )
    })
}

/// Where this node listens: `listen` when given (the local target's loopback addresses), else
/// every interface on `ports` (a pod). Raft, gRPC, metrics, mesh.
fn listen_addresses(source: &str, doc: &Document) -> Result<[SocketAddr; 4], ConfigError> {
    let Some(listen) = &doc.listen else {
        let any = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
        return Ok([
            any(doc.ports.raft),
            any(doc.ports.grpc),
            any(doc.ports.metrics),
            any(doc.ports.mesh),
        ]);
    };
    Ok([
        socket_addr(source, "listen.raft", &listen.raft)?,
        socket_addr(source, "listen.grpc", &listen.grpc)?,
        socket_addr(source, "listen.metrics", &listen.metrics)?,
        socket_addr(source, "listen.mesh", &listen.mesh)?,
    ])
}

fn mesh_settings(
    source: &str,
    doc: &Document,
    listen: SocketAddr,
) -> Result<MeshSettings, ConfigError> {
    let d = &doc.discovery;
    let seeds = d
        .seeds
        .iter()
        .enumerate()
        .map(|(i, s)| socket_addr(source, &format!("discovery.seeds[{i}]"), s))
        .collect::<Result<Vec<_>, _>>()?;
    if d.neighbours == 0 {
        return Err(err(source, "discovery.neighbours", "must be at least 1"));
    }
    Ok(MeshSettings {
        listen,
        seeds,
        dns: d.dns.clone().map(|host| (host, doc.ports.mesh)),
        neighbours: u32::try_from(d.neighbours).unwrap_or(u32::MAX),
        mdns: matches!(d.mode, contract::DiscoveryMode::Mdns),
    })
}

fn check_consensus(source: &str, c: &contract::Consensus) -> Result<(), ConfigError> {
    let (emin, emax) = c.election_timeout_ms;
    if emin == 0 || emin >= emax {
        return Err(err(
            source,
            "consensus.electionTimeoutMs",
            format!("expected [min, max] with 0 < min < max, found [{emin}, {emax}]"),
        ));
    }
    if c.heartbeat_ms == 0 || c.heartbeat_ms >= emin {
        return Err(err(
            source,
            "consensus.heartbeatMs",
            format!(
                "must be between 1 and electionTimeoutMs[0] ({emin}), found {}",
                c.heartbeat_ms
            ),
        ));
    }
    if c.snapshot_every_entries == 0 {
        return Err(err(
            source,
            "consensus.snapshotEveryEntries",
            "must be at least 1",
        ));
    }
    if c.snapshots_kept == 0 {
        return Err(err(source, "consensus.snapshotsKept", "must be at least 1"));
    }
    Ok(())
}

/// `memory.kv`: the KV_v2 pool's size and eviction policy.
fn check_kv(source: &str, kv: &contract::KvMemory) -> Result<KvConfig, ConfigError> {
    let kv = KvConfig {
        block_size: kv.block_size,
        blocks: kv.blocks,
        eviction: kv.eviction.clone(),
        ttl_seconds: kv.ttl_seconds,
    };
    if kv.block_size == 0 {
        return Err(err(source, "memory.kv.blockSize", "must be at least 1"));
    }
    if kv.blocks < 2 {
        return Err(err(
            source,
            "memory.kv.blocks",
            "must be at least 2 (the null block included)",
        ));
    }
    if let Err(e) = crate::kv::policy(&kv) {
        return Err(err(source, "memory.kv.eviction", e));
    }
    Ok(kv)
}

fn worker_threads(source: &str, r: &contract::Runtime) -> Result<Option<usize>, ConfigError> {
    match r.worker_threads {
        Some(0) => Err(err(source, "runtime.workerThreads", "must be at least 1")),
        Some(n) => Ok(Some(
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(MAX_WORKER_THREADS),
        )),
        None => Ok(None),
    }
}

fn resolve_data_dir(source: &str, raw: &str, base_dir: &Path) -> Result<PathBuf, ConfigError> {
    if raw.is_empty() {
        return Err(err(source, "dataDir", "must not be empty"));
    }
    let p = PathBuf::from(raw);
    Ok(if p.is_absolute() { p } else { base_dir.join(p) })
}

/// This node's id and name and the members it starts with, from either kind of membership.
struct Resolved {
    node_id: u64,
    name: String,
    members: Vec<MemberConfig>,
    join: bool,
    kubernetes: Option<KubernetesIdentity>,
}

fn membership(
    source: &str,
    doc: &Document,
    members_override: Option<(&str, &str)>,
    pod_name: Option<&str>,
) -> Result<Resolved, ConfigError> {
    match &doc.membership {
        contract::Membership::Static(m) => {
            if m.node_id == 0 {
                return Err(err(source, "membership.nodeId", "must be at least 1"));
            }
            Ok(Resolved {
                node_id: m.node_id,
                name: m.name.clone(),
                members: static_members(source, m, members_override)?,
                join: m.join,
                kubernetes: None,
            })
        }
        contract::Membership::Kubernetes(m) => {
            let (identity, me) = kubernetes_identity(source, doc, m, pod_name)?;
            let seed = identity.seed().map(|s| s.0);
            Ok(Resolved {
                node_id: me.node_id,
                name: me.name.clone(),
                join: seed != Some(me.node_id),
                members: vec![me],
                kubernetes: Some(identity),
            })
        }
    }
}

/// Parses and validates a configuration document. `base_dir` resolves a relative `dataDir`;
/// `members_override` is the `--members` file's content, if any; `env_pod_name` is `POD_NAME`.
pub fn parse(
    source: &str,
    text: &str,
    base_dir: &Path,
    members_override: Option<(&str, &str)>,
    env_pod_name: Option<String>,
) -> Result<NodeConfig, ConfigError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| err(source, "(document)", format!("invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(err(
            source,
            "(document)",
            format!("expected an object, found {}", kind(&v)),
        ));
    }
    check_api_version(source, &v)?;
    let doc: Document = read_typed(source, v)?;
    if doc.swarm.is_empty() {
        return Err(err(source, "swarm", "must not be empty"));
    }
    let m = membership(source, &doc, members_override, env_pod_name.as_deref())?;
    let [listen_raft, listen_grpc, listen_metrics, listen_mesh] = listen_addresses(source, &doc)?;
    let mesh = mesh_settings(source, &doc, listen_mesh)?;
    check_consensus(source, &doc.consensus)?;
    let c = &doc.consensus;
    Ok(NodeConfig {
        swarm: doc.swarm.clone(),
        pool: doc.pool.clone(),
        node_id: m.node_id,
        name: m.name,
        data_dir: resolve_data_dir(source, &doc.data_dir, base_dir)?,
        listen_raft,
        listen_grpc,
        listen_metrics,
        members: m.members,
        join: m.join,
        election_timeout_ms: c.election_timeout_ms,
        heartbeat_ms: c.heartbeat_ms,
        snapshot_every_entries: c.snapshot_every_entries,
        snapshots_kept: c.snapshots_kept,
        kv: check_kv(source, &doc.memory.kv)?,
        worker_threads: worker_threads(source, &doc.runtime)?,
        kubernetes: m.kubernetes,
        work: work_config(source, doc.work.as_ref(), base_dir)?,
        cores: doc.cores.clone(),
        mesh: Some(mesh),
        traces_endpoint: traces_endpoint(source, doc.traces.as_ref())?,
    })
}

/// `traces.otlpEndpoint`: plain `http://host:port` (TLS to a tracing backend is the collector's
/// job; the node sends to a collector beside it).
fn traces_endpoint(
    source: &str,
    t: Option<&contract::Traces>,
) -> Result<Option<String>, ConfigError> {
    let Some(t) = t else {
        return Ok(None);
    };
    let bad = |why: &str| err(source, "traces.otlpEndpoint", why.to_string());
    let Some(rest) = t.otlp_endpoint.strip_prefix("http://") else {
        return Err(bad("must be http://host:port (an OTLP/gRPC receiver)"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let port = authority.rsplit_once(':').map(|(_, p)| p);
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@'])
        || !port.is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
    {
        return Err(bad("must be http://host:port, with a port and no path"));
    }
    Ok(Some(format!("http://{authority}")))
}

fn work_config(
    source: &str,
    w: Option<&contract::Work>,
    base_dir: &Path,
) -> Result<Option<WorkConfig>, ConfigError> {
    let Some(w) = w else { return Ok(None) };
    if w.file.is_empty() {
        return Err(err(source, "work.file", "must not be empty"));
    }
    if w.max_tasks == 0 {
        return Err(err(source, "work.maxTasks", "must be at least 1"));
    }
    if !crate::work::ISOLATION_LEVELS.contains(&w.min_isolation.as_str()) {
        return Err(err(
            source,
            "work.minIsolation",
            format!("must be one of {:?}", crate::work::ISOLATION_LEVELS),
        ));
    }
    let file = PathBuf::from(&w.file);
    Ok(Some(WorkConfig {
        file: if file.is_absolute() {
            file
        } else {
            base_dir.join(file)
        },
        max_tasks: w.max_tasks,
        capacity: w.capacity,
        min_isolation: w.min_isolation.clone(),
        lease_ms: w
            .lease_ms
            .clamp(crate::work::MIN_LEASE_MS, crate::work::MAX_LEASE_MS),
        workspace_bytes: w.workspace_bytes.max(1 << 20),
        image_layout: w.image_layout.as_deref().map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base_dir.join(p)
            }
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(members: &str) -> String {
        format!(
            r#"{{"apiVersion":"pyagent.dev/node/v1alpha3","swarm":"s","pool":"p","roles":["voter"],"cores":[],
            "dataDir":"data","ports":{{"mesh":1,"raft":2,"grpc":3,"metrics":4}},"listen":null,
            "discovery":{{"mode":"static","dns":null,"seeds":["127.0.0.1:7"],"neighbours":8}},
            "consensus":{{"electionTimeoutMs":[150,300],"heartbeatMs":50,"snapshotEveryEntries":100,"snapshotsKept":2}},
            "memory":{{"kv":{{"blockSize":16,"blocks":64,"eviction":"lru","ttlSeconds":null}},"decayHalfLifeSeconds":60}},
            "sovereignty":{{"jurisdiction":null,"ownerPublicKey":null,"soulKeyFile":null,"peerShare":"none","trustedPeers":[]}},
            "runtime":{{"workerThreads":null}},
            "membership":{{"mode":"static","nodeId":1,"name":"n1","join":false,"members":[{members}]}}}}"#
        )
    }

    const KEY: &str = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=";

    fn member(key: &str) -> String {
        format!(
            r#"{{"nodeId":1,"name":"n1","raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":{key}}}"#
        )
    }

    fn keyed() -> String {
        member(&format!("\"{KEY}\""))
    }

    #[test]
    fn parses_and_resolves_relative_data_dir() {
        let c = parse("n.json", &sample(&keyed()), Path::new("/etc/x"), None, None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/x/data"));
        assert_eq!(c.listen_grpc.port(), 3);
        assert!(c.is_bootstrapper());
        let mesh = c.mesh.unwrap();
        assert_eq!(mesh.listen.port(), 1);
        assert_eq!(mesh.seeds, vec!["127.0.0.1:7".parse().unwrap()]);
        assert_eq!((mesh.neighbours, mesh.dns, mesh.mdns), (8, None, false));
    }

    #[test]
    fn traces_are_off_without_the_key_and_need_http_host_port() {
        let base = sample(&keyed());
        let c = parse("n.json", &base, Path::new("/"), None, None).unwrap();
        assert_eq!(
            c.traces_endpoint, None,
            "a node.json written before traces existed"
        );
        let with = |endpoint: &str| {
            let text = base.replacen(
                r#""runtime":"#,
                &format!(r#""traces":{{"otlpEndpoint":"{endpoint}"}},"runtime":"#),
                1,
            );
            parse("n.json", &text, Path::new("/"), None, None)
        };
        let c = with("http://127.0.0.1:4317/").unwrap();
        assert_eq!(c.traces_endpoint.as_deref(), Some("http://127.0.0.1:4317"));
        for bad in [
            "https://c:4317",
            "http://c",
            "http://c:0",
            "http://c:4317/v1/traces",
            "http://u@c:4317",
        ] {
            assert_eq!(with(bad).unwrap_err().key, "traces.otlpEndpoint", "{bad}");
        }
    }

    #[test]
    fn names_the_key() {
        let e = parse(
            "n.json",
            &sample(&member("null")),
            Path::new("/"),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.key, "membership.members[0].publicKey");
        let keyed = keyed();
        let key_of_error = |from: &str, to: &str| {
            let text = sample(&keyed).replace(from, to);
            assert_ne!(text, sample(&keyed), "{from} is not in the sample");
            parse("n.json", &text, Path::new("/"), None, None)
                .unwrap_err()
                .key
        };
        assert_eq!(
            key_of_error("\"heartbeatMs\":50", "\"heartbeatMs\":500"),
            "consensus.heartbeatMs"
        );
        assert_eq!(key_of_error("\"swarm\":\"s\",", ""), "(document)");
        assert_eq!(
            key_of_error("\"blocks\":64", "\"blocks\":\"64\""),
            "memory.kv.blocks"
        );
        assert_eq!(
            key_of_error("\"neighbours\":8", "\"neighbours\":8,\"extra\":1"),
            "discovery.extra"
        );
        assert_eq!(key_of_error("v1alpha3", "v1alpha1"), "apiVersion");
        assert_eq!(
            key_of_error("\"127.0.0.1:7\"", "\"peer-1:7\""),
            "discovery.seeds[0]"
        );
        for bad in ["0", "\"2\""] {
            let runtime = format!("\"workerThreads\":{bad}");
            assert_eq!(
                key_of_error("\"workerThreads\":null", &runtime),
                "runtime.workerThreads"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let text = sample(&keyed()).replace("\"pool\":\"p\",", "\"pool\":\"p\",\"poolIndex\":0,");
        let e = parse("n.json", &text, Path::new("/"), None, None).unwrap_err();
        assert!(e.message.contains("unknown field `poolIndex`"), "{e}");
    }

    #[test]
    fn worker_threads_default_to_one_per_cpu_and_are_clamped() {
        let threads = |value: &str| {
            let text = sample(&keyed()).replace(
                "\"workerThreads\":null",
                &format!("\"workerThreads\":{value}"),
            );
            parse("n.json", &text, Path::new("/"), None, None)
                .unwrap()
                .worker_threads
        };
        assert_eq!(threads("null"), None);
        assert_eq!(threads("1"), Some(1));
        assert_eq!(threads("100000"), Some(MAX_WORKER_THREADS));
    }

    #[test]
    fn members_file_supplies_keys() {
        let over = format!(r#"{{"members":[{}]}}"#, keyed());
        let c = parse(
            "n.json",
            &sample(&member("null")),
            Path::new("/"),
            Some(("m.json", &over)),
            None,
        )
        .unwrap();
        assert_eq!(c.members[0].public_key.as_deref(), Some(KEY));
    }

    fn kubernetes_sample() -> String {
        let pools = r#"[{"name":"gpu","statefulSet":"sw-gpu","index":1,"voter":false},
            {"name":"p","statefulSet":"sw-p","index":0,"voter":true}]"#;
        let membership = format!(
            r#"{{"mode":"kubernetes","namespace":"ns","service":"sw-peers","clusterDomain":"cluster.local","serviceAccount":"sw-node","pools":{pools}}}"#
        );
        let start = sample("").find("\"membership\"").unwrap();
        format!("{}\"membership\":{membership}}}", &sample("")[..start])
    }

    #[test]
    fn kubernetes_identity_comes_from_the_pod_name() {
        let text = kubernetes_sample();
        let c = parse("n.json", &text, Path::new("/"), None, Some("sw-p-2".into())).unwrap();
        assert_eq!((c.node_id, c.name.as_str(), c.join), (3, "sw-p-2", true));
        assert_eq!(c.members[0].raft, "sw-p-2.sw-peers.ns.svc.cluster.local:2");
        let k = c.kubernetes.as_ref().unwrap();
        assert_eq!(
            k.seed().unwrap(),
            (
                1,
                "sw-p-0.sw-peers.ns.svc.cluster.local:2".to_string(),
                "sw-p-0.sw-peers.ns.svc.cluster.local:3".to_string()
            )
        );
        assert_eq!(
            k.pod_of(1002).map(|(p, o)| (p.name.as_str(), o)),
            Some(("gpu", 1))
        );
        assert_eq!(k.pod_of(2001), None, "no pool of index 2");
        let seed = parse("n.json", &text, Path::new("/"), None, Some("sw-p-0".into())).unwrap();
        assert!(!seed.join && seed.is_bootstrapper());
        for bad in [
            None,
            Some("sw-p"),
            Some("sw-p-x"),
            Some("other-0"),
            Some("sw-p-1000"),
        ] {
            let e =
                parse("n.json", &text, Path::new("/"), None, bad.map(String::from)).unwrap_err();
            assert_eq!(e.key, "membership", "{bad:?}: {e}");
        }
    }

    #[test]
    fn pod_ordinal() {
        assert_eq!(ordinal_of("laptop-agents-2", "laptop-agents"), Some(2));
        assert_eq!(ordinal_of("laptop-agents-2", "laptop"), None);
        assert_eq!(ordinal_of("laptop-agents-+2", "laptop-agents"), None);
        assert_eq!(node_id_of(2, 1), 2002);
    }
}
