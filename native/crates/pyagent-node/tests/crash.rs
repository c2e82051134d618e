//! Crash safety with real processes: three `pyagent-node` processes take concurrent writes and
//! are all killed with SIGKILL mid-stream; after a restart every acknowledged write is there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use prost::Message as _;
use pyagent_node::auth::Signer;
use pyagent_node::proto::{self, command::Op, node_client::NodeClient};

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ports the nodes will listen on, below Linux's ephemeral range (32768+) so that no outgoing
/// connection takes one while a node is down, and under the local target's slots (20000+).
/// Each is held by name for the test's life (see [`hold`]), so another suite on this machine (a
/// second checkout's) never picks it; a port that something else listens on fails to bind.
struct Ports {
    ports: Vec<u16>,
    _held: Vec<std::os::unix::net::UnixListener>,
}

/// Holds `name` machine-wide (in this network namespace) for as long as the socket lives, and
/// lets it go when the process dies, even by SIGKILL: a Unix socket bound to an abstract name.
fn hold(name: &str) -> Option<std::os::unix::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).ok()?;
    std::os::unix::net::UnixListener::bind_addr(&addr).ok()
}

fn reserve_ports(n: usize) -> Ports {
    let start = (std::process::id() as usize * 7919) % 10_000;
    let (mut ports, mut locks) = (Vec::new(), Vec::new());
    for offset in 0..10_000 {
        let port = (10_000 + (start + offset) % 10_000) as u16;
        let Some(held) = hold(&format!("pyagent-test-port-{port}")) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
            locks.push(held);
            if ports.len() == n {
                return Ports {
                    ports,
                    _held: locks,
                };
            }
        }
    }
    panic!("no {n} free ports in 10000..20000");
}

fn spawn(root: &Path, i: u64, generation: u32) -> Child {
    let dir = root.join(format!("n{i}"));
    Command::new(env!("CARGO_BIN_EXE_pyagent-node"))
        .args(["run", "--config"])
        .arg(dir.join("node.json"))
        .arg("--members")
        .arg(root.join("members.json"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("log-{generation}"))).unwrap())
        .spawn()
        .unwrap()
}

async fn connect(addr: &str) -> Option<NodeClient<tonic::transport::Channel>> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    Some(NodeClient::new(ch))
}

/// Polls every node's Status until they agree on a leader; returns the leader's gRPC address.
async fn leader_addr(grpc: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for a in grpc {
            if let Some(mut c) = connect(a).await {
                if let Ok(s) = c.status(proto::StatusRequest {}).await {
                    let s = s.into_inner();
                    if s.leader_id != 0 && s.role == "Leader" {
                        return a.clone();
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader within 60 s");
}

/// A linearizable read of `key` through whichever node leads now: leadership may move while
/// the restarted nodes settle, so a failed read asks again for the leader (up to a minute).
async fn found(grpc: &[String], key: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leader = leader_addr(grpc).await;
        if let Some(mut c) = connect(&leader).await {
            let get = proto::GetRequest {
                key: key.into(),
                stale: false,
            };
            match c.get(get).await {
                Ok(r) => return r.into_inner().found,
                Err(e) if Instant::now() > deadline => panic!("reading {key}: {e}"),
                Err(_) => {}
            }
        }
    }
}

fn signed(signer: &Signer, seq: u64, key: &str) -> proto::SignedCommand {
    let op = Op::Put(proto::Put {
        key: key.into(),
        value: key.as_bytes().to_vec(),
        fence: None,
    });
    let command = proto::Command { op: Some(op) }.encode_to_vec();
    let signature = signer.sign_command(seq, &command);
    proto::SignedCommand {
        command,
        signer: signer.node_id,
        seq,
        signature,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write() {
    let root = std::env::temp_dir().join(format!("pyagent-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _guard = Dir(root.clone());
    let reserved = reserve_ports(9);
    let ports: Vec<(u16, u16, u16)> = reserved
        .ports
        .chunks(3)
        .map(|p| (p[0], p[1], p[2]))
        .collect();
    let mut members = Vec::new();
    for i in 1..=3u64 {
        let dir = root.join(format!("n{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_pyagent-node"))
            .args(["keygen", "--data-dir"])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let (r, g, _) = ports[(i - 1) as usize];
        members.push(serde_json::json!({
            "nodeId": i, "name": format!("n{i}"), "raft": format!("127.0.0.1:{r}"),
            "grpc": format!("127.0.0.1:{g}"), "voter": true,
            "publicKey": String::from_utf8(out.stdout).unwrap().trim(),
        }));
    }
    std::fs::write(
        root.join("members.json"),
        serde_json::to_vec(&serde_json::json!({ "members": members })).unwrap(),
    )
    .unwrap();
    for i in 1..=3u64 {
        let (r, g, m) = ports[(i - 1) as usize];
        let cfg = serde_json::json!({
            "apiVersion": "pyagent.dev/node/v1alpha3", "swarm": "crash", "pool": "p", "roles": [], "cores": [],
            "dataDir": "data", "ports": {"mesh": 1, "raft": r, "grpc": g, "metrics": m},
            "listen": {"raft": format!("127.0.0.1:{r}"), "grpc": format!("127.0.0.1:{g}"), "metrics": format!("127.0.0.1:{m}"), "mesh": "127.0.0.1:0"},
            "discovery": {"mode": "static", "dns": null, "seeds": [], "neighbours": 8},
            "membership": {"mode": "static", "nodeId": i, "name": format!("n{i}"), "join": false,
                "members": members.iter().map(|m| { let mut m = m.clone(); m["publicKey"] = serde_json::Value::Null; m }).collect::<Vec<_>>()},
            "consensus": {"electionTimeoutMs": [500, 1000], "heartbeatMs": 100, "snapshotEveryEntries": 200, "snapshotsKept": 2},
            "memory": {"kv": {"blockSize": 16, "blocks": 64, "eviction": "lru", "ttlSeconds": null}, "decayHalfLifeSeconds": 60},
            "sovereignty": {"jurisdiction": null, "ownerPublicKey": null, "soulKeyFile": null, "peerShare": "none", "trustedPeers": []},
            "runtime": {"workerThreads": null},
        });
        std::fs::write(
            root.join(format!("n{i}/node.json")),
            serde_json::to_vec(&cfg).unwrap(),
        )
        .unwrap();
    }
    let grpc: Vec<String> = ports
        .iter()
        .map(|(_, g, _)| format!("127.0.0.1:{g}"))
        .collect();
    let key1 = {
        let text = std::fs::read_to_string(root.join("n1/data/identity.key")).unwrap();
        let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap()
            .try_into()
            .unwrap();
        SigningKey::from_bytes(&seed)
    };

    let mut children: Vec<Child> = (1..=3).map(|i| spawn(&root, i, 0)).collect();
    let leader = leader_addr(&grpc).await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (leader, acked) = (leader.clone(), acked.clone());
        let signer = Signer::new(1, "crash".into(), key1.clone());
        writers.push(tokio::spawn(async move {
            let mut c = connect(&leader).await.unwrap();
            for i in 0.. {
                let key = format!("w{w}-{i}");
                match c.submit(signed(&signer, signer.next_seq(), &key)).await {
                    Ok(r) if r.get_ref().applied => acked.lock().unwrap().push(key),
                    _ => return,
                }
            }
        }));
    }
    // Let writes flow, then kill every process at once, mid-stream. Awaited as a count, not a
    // fixed time: on a busy machine 1.5 s may carry a handful of writes or none.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 300
        && !writers.iter().all(|w| w.is_finished())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in &mut children {
        c.kill().unwrap();
    }
    for c in &mut children {
        c.wait().unwrap();
    }
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too few writes before the crash: {}",
        acked.len()
    );

    let mut children: Vec<Child> = (1..=3).map(|i| spawn(&root, i, 1)).collect();
    let mut missing = Vec::new();
    for k in &acked {
        if !found(&grpc, k).await {
            missing.push(k.clone());
        }
    }
    for ch in &mut children {
        let _ = ch.kill();
        let _ = ch.wait();
    }
    eprintln!(
        "FIGURES: {} acknowledged writes before SIGKILL of all 3 nodes; {} missing after restart",
        acked.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
}
