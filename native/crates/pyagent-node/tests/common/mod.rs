//! What the in-process cluster tests (cluster.rs, recovery.rs) share: a folder removed on drop,
//! deterministic keys, ephemeral loopback sockets and the nodes' configurations.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use pyagent_node::config::{KvConfig, MemberConfig, NodeConfig};
use pyagent_node::identity::public_key_b64;
use pyagent_node::node::{self, Listeners, Node};

pub struct Dir(pub PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn key(i: u64) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 1; 32])
}

/// Sockets on ports the kernel picks: tests never take a fixed port.
pub fn listeners() -> Listeners {
    let bind = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    Listeners {
        raft: bind(),
        grpc: bind(),
        metrics: bind(),
    }
}

/// One voter per listener set, node ids from 1, data under `root`; snapshots every
/// `snapshot_every` entries.
pub fn configs(swarm: &str, root: &Path, ls: &[Listeners], snapshot_every: u64) -> Vec<NodeConfig> {
    let members: Vec<MemberConfig> = ls
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let id = i as u64 + 1;
            MemberConfig {
                node_id: id,
                name: format!("n{id}"),
                raft: l.raft.local_addr().unwrap().to_string(),
                grpc: l.grpc.local_addr().unwrap().to_string(),
                voter: true,
                public_key: Some(public_key_b64(&key(id))),
            }
        })
        .collect();
    ls.iter()
        .enumerate()
        .map(|(i, l)| {
            let id = i as u64 + 1;
            NodeConfig {
                swarm: swarm.into(),
                pool: "agents".into(),
                node_id: id,
                name: format!("n{id}"),
                data_dir: root.join(format!("n{id}")),
                listen_raft: l.raft.local_addr().unwrap(),
                listen_grpc: l.grpc.local_addr().unwrap(),
                listen_metrics: l.metrics.local_addr().unwrap(),
                members: members.clone(),
                join: false,
                // Several in-process clusters share the test machine's two cores, and CI runs
                // them beside a CPU hog: a heartbeat can be late by hundreds of milliseconds
                // while a node signs and checks 1 MiB entries. etcd's default (1 s at 100 ms
                // heartbeats) as the floor keeps leadership where the test put it.
                election_timeout_ms: (1000, 2000),
                heartbeat_ms: 100,
                snapshot_every_entries: snapshot_every,
                snapshots_kept: 2,
                kv: KvConfig {
                    block_size: 16,
                    blocks: 64,
                    eviction: "lru".into(),
                    ttl_seconds: None,
                },
                // In process the test's runtime runs the nodes; the field is read by main only.
                worker_threads: None,
                kubernetes: None,
                // Not workers: these tests are about Raft; tests/integration/test_tasks.py
                // runs tasks on real processes.
                work: None,
                cores: Vec::new(),
                // Raft alone: tests/integration/test_mesh.py runs the mesh on real processes.
                mesh: None,
                traces_endpoint: None,
            }
        })
        .collect()
}

/// Re-binds a node's ports after a shutdown, retried while the old sockets close.
pub fn rebind(cfg: &NodeConfig) -> Listeners {
    for _ in 0..200 {
        if let Ok(l) = node::Listeners::bind(cfg) {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("could not re-bind {:?}", cfg.listen_raft);
}

/// Starts a node per configuration, each on its listeners and with its key (node ids start at 1).
pub async fn start_nodes(cfgs: &[NodeConfig], ls: Vec<Listeners>) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (cfg, l) in cfgs.iter().cloned().zip(ls) {
        let id = cfg.node_id;
        nodes.push(node::start(cfg, key(id), l).await.unwrap());
    }
    nodes
}
