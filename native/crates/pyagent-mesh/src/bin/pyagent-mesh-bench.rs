//! One mesh node in a process of its own, driven over stdin, for benchmarks/mesh.py: the
//! benchmark starts many of these and measures how long a message takes to reach them all.
//!
//! Node `i` of `n` has the key `[i + 1; 32]`; every node of the run is a member. It listens on
//! `--listen HOST:PORT` (default 127.0.0.1, any port: a test in network namespaces gives each
//! node its namespace's address). Commands
//! (one per line): `seed HOST:PORT`, `peers`, `publish ID BYTES`, `quit`. Output: `listening
//! ADDR` once, `peers N`, `sent ID NS`, and `recv ID SENT_NS RECV_NS` for each delivered
//! message (nanoseconds since the Unix epoch: all processes run on one machine).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyagent_mesh::{keypair_of, Lesson, MemberKey, Mesh, MeshConfig, Payload, Seed};
use tokio::io::{AsyncBufReadExt, BufReader};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn arg(args: &[String], name: &str, default: u32) -> u32 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn member(i: u32) -> MemberKey {
    let public = keypair_of(secret(i))
        .public()
        .try_into_ed25519()
        .map(|k| k.to_bytes())
        .unwrap_or_default();
    MemberKey {
        node_id: u64::from(i) + 1,
        public_key: public,
    }
}

fn secret(i: u32) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&(i + 1).to_be_bytes());
    s
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (index, nodes) = (arg(&args, "--index", 0), arg(&args, "--nodes", 1));
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .map_or("127.0.0.1:0", String::as_str);
    let Ok(listen) = listen.parse() else {
        eprintln!("error: --listen {listen}: not HOST:PORT");
        std::process::exit(2);
    };
    let mut cfg = MeshConfig::new("bench", secret(index), listen);
    cfg.neighbours = arg(&args, "--neighbours", 8);
    cfg.limits.per_sender_per_minute = 1_000_000;
    cfg.limits.max_message_bytes = 256 * 1024;
    cfg.redial_every = Duration::from_millis(u64::from(arg(&args, "--tick-ms", 200)));
    cfg.heartbeat = Duration::from_millis(u64::from(arg(&args, "--heartbeat-ms", 100)));
    let members: Vec<MemberKey> = (0..nodes).map(member).collect();
    let mesh = match Mesh::start(cfg, &members).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("listening {}", mesh.listening());
    let mut delivered = mesh.subscribe();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["seed", addr] => {
                        if let Ok(a) = addr.parse() {
                            let _ = mesh.add_seed(Seed::Addr(a)).await;
                        }
                    }
                    ["peers"] => println!("peers {}", mesh.peers().await.map(|p| p.len()).unwrap_or(0)),
                    ["publish", id, bytes] => {
                        let size: usize = bytes.parse().unwrap_or(0);
                        let sent = now_ns();
                        let text = format!("{id} {sent} {}", "x".repeat(size));
                        let lesson = Lesson { text, tags: Vec::new(), task: None };
                        match mesh.publish(Payload::Lesson(lesson)).await {
                            Ok(()) => println!("sent {id} {sent}"),
                            Err(e) => println!("failed {id} {e}"),
                        }
                    }
                    ["stats"] => println!("stats {:?}", mesh.stats()),
                    ["quit"] => break,
                    _ => {}
                }
            }
            Ok(got) = delivered.recv() => {
                if let Payload::Lesson(l) = got.payload {
                    let mut parts = l.text.splitn(3, ' ');
                    if let (Some(id), Some(sent)) = (parts.next(), parts.next()) {
                        println!("recv {id} {sent} {}", now_ns());
                    }
                }
            }
        }
    }
    mesh.stop().await;
}
