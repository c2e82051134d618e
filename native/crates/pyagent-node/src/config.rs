//! The node configuration (`node.json`, rendered by the compiler) and its validation.
//!
//! Every problem is reported as one [`ConfigError`] naming the dotted key, so `main` can print it
//! and exit with code 2 instead of panicking.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub const API_VERSION: &str = "pyagent.dev/node/v1alpha1";

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

struct Reader<'a> {
    source: &'a str,
}

impl Reader<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            source_name: self.source.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn get<'v>(&self, v: &'v Value, path: &str) -> Result<&'v Value, ConfigError> {
        lookup(v, path).ok_or_else(|| self.err(path, "missing"))
    }

    fn str(&self, v: &Value, path: &str) -> Result<String, ConfigError> {
        match self.get(v, path)? {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.err(path, "must not be empty")),
            other => Err(self.err(path, format!("expected a string, found {}", kind(other)))),
        }
    }

    fn u64(&self, v: &Value, path: &str) -> Result<u64, ConfigError> {
        let value = self.get(v, path)?;
        value.as_u64().ok_or_else(|| {
            self.err(
                path,
                format!("expected a non-negative integer, found {}", kind(value)),
            )
        })
    }

    fn opt_u64(&self, v: &Value, path: &str) -> Result<Option<u64>, ConfigError> {
        match lookup(v, path) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.u64(v, path).map(Some),
        }
    }

    fn bool_or(&self, v: &Value, path: &str, default: bool) -> Result<bool, ConfigError> {
        match lookup(v, path) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(
                path,
                format!("expected true or false, found {}", kind(other)),
            )),
        }
    }

    fn addr(&self, v: &Value, path: &str) -> Result<SocketAddr, ConfigError> {
        let s = self.str(v, path)?;
        s.parse().map_err(|_| {
            self.err(
                path,
                format!("expected \"host:port\" with an IP address, found {s:?}"),
            )
        })
    }
}

fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = v;
    for part in path.split('.') {
        if let Some((name, idx)) = part.split_once('[') {
            cur = cur.get(name)?;
            let i: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = cur.get(i)?;
        } else {
            cur = cur.get(part)?;
        }
    }
    Some(cur)
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

fn parse_members(r: &Reader<'_>, v: &Value, path: &str) -> Result<Vec<MemberConfig>, ConfigError> {
    let Some(list) = v.as_array() else {
        return Err(r.err(path, format!("expected a list, found {}", kind(v))));
    };
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if !m.is_object() {
            return Err(r.err(&p, format!("expected an object, found {}", kind(m))));
        }
        let node_id = r.u64(m, "nodeId").map_err(|e| prefix(e, &p))?;
        if node_id == 0 {
            return Err(r.err(&format!("{p}.nodeId"), "must be at least 1"));
        }
        let public_key = match m.get("publicKey") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                crate::identity::decode_public_key(s)
                    .map_err(|e| r.err(&format!("{p}.publicKey"), e.to_string()))?;
                Some(s.clone())
            }
            Some(other) => {
                return Err(r.err(
                    &format!("{p}.publicKey"),
                    format!("expected base64 or null, found {}", kind(other)),
                ))
            }
        };
        let name = match m.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => format!("node-{node_id}"),
        };
        let raft = r.str(m, "raft").map_err(|e| prefix(e, &p))?;
        let grpc = r.str(m, "grpc").map_err(|e| prefix(e, &p))?;
        let voter = r.bool_or(m, "voter", true).map_err(|e| prefix(e, &p))?;
        if out.iter().any(|o: &MemberConfig| o.node_id == node_id) {
            return Err(r.err(
                &format!("{p}.nodeId"),
                format!("duplicate node id {node_id}"),
            ));
        }
        out.push(MemberConfig {
            node_id,
            name,
            raft,
            grpc,
            voter,
            public_key,
        });
    }
    Ok(out)
}

fn prefix(mut e: ConfigError, p: &str) -> ConfigError {
    e.key = format!("{p}.{}", e.key);
    e
}

/// Node ids of pool `poolIndex` start at `poolIndex * POOL_ID_STRIDE + 1` (Kubernetes, where
/// the id is derived from the pod's ordinal).
pub const POOL_ID_STRIDE: u64 = 1000;

/// Node id from a StatefulSet pod name `<name>-<ordinal>`: ordinal + 1.
pub fn node_id_from_pod_name(pod: &str) -> Option<u64> {
    let ordinal: u64 = pod.rsplit_once('-')?.1.parse().ok()?;
    ordinal.checked_add(1)
}

/// More runtime threads than this are clamped (a typo must not start thousands of threads).
pub const MAX_WORKER_THREADS: usize = 256;

/// `nodeId`, or (in Kubernetes, where it is not rendered) the pod's ordinal from POD_NAME, offset
/// by `poolIndex` so that every pool's ids are distinct.
fn parse_node_id(
    r: &Reader<'_>,
    v: &Value,
    env_pod_name: Option<&str>,
) -> Result<u64, ConfigError> {
    Ok(match r.opt_u64(v, "nodeId")? {
        Some(0) => return Err(r.err("nodeId", "must be at least 1")),
        Some(id) => id,
        None => env_pod_name
            .and_then(node_id_from_pod_name)
            .map(|o| {
                r.opt_u64(v, "poolIndex")
                    .map(|p| p.unwrap_or(0) * POOL_ID_STRIDE + o)
            })
            .transpose()?
            .ok_or_else(|| {
                r.err(
                    "nodeId",
                    "missing (and POD_NAME does not end in an ordinal)",
                )
            })?,
    })
}

/// Where this node listens for `key` (raft, grpc, metrics): `listen.<key>` when given (the
/// local target's loopback addresses), else every interface on `ports.<key>` (a pod).
fn parse_listen(r: &Reader<'_>, v: &Value, key: &str) -> Result<SocketAddr, ConfigError> {
    if lookup(v, &format!("listen.{key}")).is_some() {
        r.addr(v, &format!("listen.{key}"))
    } else {
        let port = r.u64(v, &format!("ports.{key}"))?;
        let port = u16::try_from(port)
            .map_err(|_| r.err(&format!("ports.{key}"), "must be a port number (0-65535)"))?;
        Ok(SocketAddr::from(([0, 0, 0, 0], port)))
    }
}

/// `members` of the configuration, overlaid by the `--members` file (keys, addresses, roles);
/// this node must be listed and every member must have a public key.
fn parse_all_members(
    r: &Reader<'_>,
    v: &Value,
    members_override: Option<(&str, &str)>,
    node_id: u64,
) -> Result<Vec<MemberConfig>, ConfigError> {
    let mut members = parse_members(r, r.get(v, "members")?, "members")?;
    if let Some((msource, mtext)) = members_override {
        let mr = Reader { source: msource };
        let mv: Value = serde_json::from_str(mtext)
            .map_err(|e| mr.err("(document)", format!("invalid JSON: {e}")))?;
        let (list, path) = match mv.get("members") {
            Some(l) => (l, "members"),
            None => (&mv, "(document)"),
        };
        let extra = parse_members(&mr, list, path)?;
        for e in extra {
            match members.iter_mut().find(|m| m.node_id == e.node_id) {
                Some(m) => {
                    if e.public_key.is_some() {
                        m.public_key = e.public_key;
                    }
                    m.raft = e.raft;
                    m.grpc = e.grpc;
                    m.voter = e.voter;
                    m.name = e.name;
                }
                None => members.push(e),
            }
        }
    }
    if !members.iter().any(|m| m.node_id == node_id) {
        return Err(r.err(
            "members",
            format!("does not list this node (nodeId {node_id})"),
        ));
    }
    for (i, m) in members.iter().enumerate() {
        if m.public_key.is_none() {
            return Err(r.err(
                &format!("members[{i}].publicKey"),
                format!(
                    "missing for node {} (run `pyagent-node keygen` and pass --members)",
                    m.node_id
                ),
            ));
        }
    }
    Ok(members)
}

/// `consensus`: (electionTimeoutMs, heartbeatMs, snapshotEveryEntries, snapshotsKept).
fn parse_consensus(r: &Reader<'_>, v: &Value) -> Result<((u64, u64), u64, u64, u64), ConfigError> {
    let emin = r.u64(v, "consensus.electionTimeoutMs[0]")?;
    let emax = r.u64(v, "consensus.electionTimeoutMs[1]")?;
    if emin == 0 || emin >= emax {
        return Err(r.err(
            "consensus.electionTimeoutMs",
            format!("expected [min, max] with 0 < min < max, found [{emin}, {emax}]"),
        ));
    }
    let heartbeat_ms = r.u64(v, "consensus.heartbeatMs")?;
    if heartbeat_ms == 0 || heartbeat_ms >= emin {
        return Err(r.err(
            "consensus.heartbeatMs",
            format!("must be between 1 and electionTimeoutMs[0] ({emin}), found {heartbeat_ms}"),
        ));
    }
    let snapshot_every_entries = r.u64(v, "consensus.snapshotEveryEntries")?;
    if snapshot_every_entries == 0 {
        return Err(r.err("consensus.snapshotEveryEntries", "must be at least 1"));
    }
    let snapshots_kept = r.u64(v, "consensus.snapshotsKept")?;
    if snapshots_kept == 0 {
        return Err(r.err("consensus.snapshotsKept", "must be at least 1"));
    }
    Ok((
        (emin, emax),
        heartbeat_ms,
        snapshot_every_entries,
        snapshots_kept,
    ))
}

/// `memory.kv`: the KV_v2 pool's size and eviction policy.
fn parse_kv(r: &Reader<'_>, v: &Value) -> Result<KvConfig, ConfigError> {
    let kv = KvConfig {
        block_size: r.u64(v, "memory.kv.blockSize")?,
        blocks: r.u64(v, "memory.kv.blocks")?,
        eviction: r.str(v, "memory.kv.eviction")?,
        ttl_seconds: r.opt_u64(v, "memory.kv.ttlSeconds")?,
    };
    if kv.block_size == 0 {
        return Err(r.err("memory.kv.blockSize", "must be at least 1"));
    }
    if kv.blocks < 2 {
        return Err(r.err(
            "memory.kv.blocks",
            "must be at least 2 (the null block included)",
        ));
    }
    if let Err(e) = crate::kv::policy(&kv) {
        return Err(r.err("memory.kv.eviction", e));
    }
    Ok(kv)
}

/// Parses and validates a configuration document. `base_dir` resolves a relative `dataDir`;
/// `members_override` is the `--members` file's content, if any.
pub fn parse(
    source: &str,
    text: &str,
    base_dir: &Path,
    members_override: Option<(&str, &str)>,
    env_pod_name: Option<String>,
) -> Result<NodeConfig, ConfigError> {
    let r = Reader { source };
    let v: Value = serde_json::from_str(text)
        .map_err(|e| r.err("(document)", format!("invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(r.err(
            "(document)",
            format!("expected an object, found {}", kind(&v)),
        ));
    }
    let api = r.str(&v, "apiVersion")?;
    if api != API_VERSION {
        return Err(r.err(
            "apiVersion",
            format!("expected {API_VERSION:?}, found {api:?}"),
        ));
    }
    let swarm = r.str(&v, "swarm")?;
    let pool = lookup(&v, "pool")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let node_id = parse_node_id(&r, &v, env_pod_name.as_deref())?;
    let name = match lookup(&v, "name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => env_pod_name.unwrap_or_else(|| format!("node-{node_id}")),
    };
    let data_dir_raw = r.str(&v, "dataDir")?;
    let data_dir = {
        let p = PathBuf::from(&data_dir_raw);
        if p.is_absolute() {
            p
        } else {
            base_dir.join(p)
        }
    };
    let listen_raft = parse_listen(&r, &v, "raft")?;
    let listen_grpc = parse_listen(&r, &v, "grpc")?;
    let listen_metrics = parse_listen(&r, &v, "metrics")?;

    let members = parse_all_members(&r, &v, members_override, node_id)?;
    let join = r.bool_or(&v, "join", false)?;
    if !join && !members.iter().any(|m| m.voter) {
        return Err(r.err("members", "no member is a voter"));
    }

    let (election_timeout_ms, heartbeat_ms, snapshot_every_entries, snapshots_kept) =
        parse_consensus(&r, &v)?;
    let kv = parse_kv(&r, &v)?;
    let worker_threads = match r.opt_u64(&v, "runtime.workerThreads")? {
        Some(0) => return Err(r.err("runtime.workerThreads", "must be at least 1")),
        Some(n) => Some(
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(MAX_WORKER_THREADS),
        ),
        None => None,
    };
    Ok(NodeConfig {
        swarm,
        pool,
        node_id,
        name,
        data_dir,
        listen_raft,
        listen_grpc,
        listen_metrics,
        members,
        join,
        election_timeout_ms,
        heartbeat_ms,
        snapshot_every_entries,
        snapshots_kept,
        kv,
        worker_threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(extra_members: &str) -> String {
        format!(
            r#"{{"apiVersion":"pyagent.dev/node/v1alpha1","swarm":"s","pool":"p","nodeId":1,
            "dataDir":"data","ports":{{"mesh":1,"raft":2,"grpc":3,"metrics":4}},
            "consensus":{{"electionTimeoutMs":[150,300],"heartbeatMs":50,"snapshotEveryEntries":100,"snapshotsKept":2}},
            "memory":{{"kv":{{"blockSize":16,"blocks":64,"eviction":"lru","ttlSeconds":null}}}},
            "members":[{extra_members}]}}"#
        )
    }

    const KEY: &str = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=";

    #[test]
    fn parses_and_resolves_relative_data_dir() {
        let m = format!(
            r#"{{"nodeId":1,"raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":"{KEY}"}}"#
        );
        let c = parse("n.json", &sample(&m), Path::new("/etc/x"), None, None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/x/data"));
        assert_eq!(c.listen_grpc.port(), 3);
        assert!(c.is_bootstrapper());
    }

    #[test]
    fn names_the_key() {
        let m = r#"{"nodeId":1,"raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":null}"#;
        let e = parse("n.json", &sample(m), Path::new("/"), None, None).unwrap_err();
        assert_eq!(e.key, "members[0].publicKey");
        let m = format!(
            r#"{{"nodeId":1,"raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":"{KEY}"}}"#
        );
        let m = m.as_str();
        let key_of_error = |from: &str, to: &str| {
            let text = sample(m).replace(from, to);
            parse("n.json", &text, Path::new("/"), None, None)
                .unwrap_err()
                .key
        };
        assert_eq!(
            key_of_error("\"heartbeatMs\":50", "\"heartbeatMs\":500"),
            "consensus.heartbeatMs"
        );
        assert_eq!(key_of_error("\"swarm\":\"s\",", ""), "swarm");
        let pool = "\"pool\":\"p\",";
        for bad in ["0", "\"2\""] {
            let runtime = format!("\"runtime\":{{\"workerThreads\":{bad}}},");
            assert_eq!(key_of_error(pool, &runtime), "runtime.workerThreads");
        }
    }

    #[test]
    fn worker_threads_default_to_one_per_cpu_and_are_clamped() {
        let m = format!(
            r#"{{"nodeId":1,"raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":"{KEY}"}}"#
        );
        let threads = |runtime: &str| {
            let text = sample(&m).replace("\"pool\":\"p\",", runtime);
            parse("n.json", &text, Path::new("/"), None, None)
                .unwrap()
                .worker_threads
        };
        assert_eq!(threads(""), None);
        assert_eq!(threads(r#""runtime":{"workerThreads":null},"#), None);
        assert_eq!(threads(r#""runtime":{"workerThreads":1},"#), Some(1));
        assert_eq!(
            threads(r#""runtime":{"workerThreads":100000},"#),
            Some(MAX_WORKER_THREADS)
        );
    }

    #[test]
    fn members_file_supplies_keys() {
        let m = r#"{"nodeId":1,"raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":null}"#;
        let over = format!(
            r#"[{{"nodeId":1,"raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":"{KEY}"}}]"#
        );
        let c = parse(
            "n.json",
            &sample(m),
            Path::new("/"),
            Some(("m.json", &over)),
            None,
        )
        .unwrap();
        assert_eq!(c.members[0].public_key.as_deref(), Some(KEY));
    }

    #[test]
    fn pod_ordinal() {
        assert_eq!(node_id_from_pod_name("laptop-agents-2"), Some(3));
        assert_eq!(node_id_from_pod_name("x"), None);
        let m = format!(
            r#"{{"nodeId":2002,"raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":"{KEY}"}}"#
        );
        let text = sample(&m).replace("\"nodeId\":1,", "\"poolIndex\":2,");
        let c = parse(
            "n.json",
            &text,
            Path::new("/"),
            None,
            Some("sw-gpu-1".into()),
        )
        .unwrap();
        assert_eq!((c.node_id, c.name.as_str()), (2002, "sw-gpu-1"));
    }
}
