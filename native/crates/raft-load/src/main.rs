//! The client `benchmarks/raft.py` drives both systems with: N concurrent workers on one gRPC
//! channel (HTTP/2), each issuing one request at a time, timing every request.
//!
//! A compiled client, like etcd's own `benchmark` tool, so that the figures are the servers':
//! the Python grpc.aio client it replaces spent ~0.33 ms of CPU per request and about half of a
//! single-client write's latency, on the same two cores as the servers.
//!
//!     raft-load --system etcd --addr 127.0.0.1:31000 --op put --clients 1 --total 1000
//!     raft-load --system pyagent --addr 127.0.0.1:20001 --op put --clients 64 --total 10000 \
//!         --swarm bench --signer 1 --key stacks/.../identity.key
//!
//! Prints one JSON object: `{"elapsed": s, "latencies": [s, ...], "retries": n}` (after a
//! warm-up that is not timed). A request refused as UNAVAILABLE or timed out is retried, at most
//! five times, and its latency includes the retries.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use prost::Message;
use pyagent_node::auth::Signer;
use pyagent_node::proto::{self, node_client::NodeClient};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const VALUE_BYTES: usize = 256;
const KEYS: usize = 1000;
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RETRIES: u32 = 5;

/// etcdserverpb.PutRequest {key = 1, value = 2}.
#[derive(Clone, PartialEq, prost::Message)]
struct EtcdPut {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// etcdserverpb.RangeRequest {key = 1}; serializable = false (the default): linearizable.
#[derive(Clone, PartialEq, prost::Message)]
struct EtcdRange {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
}

/// A response whose fields are not needed (prost skips unknown fields).
#[derive(Clone, PartialEq, prost::Message)]
struct Ignored {}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Put,
    Get,
}

struct Args {
    system: String,
    addr: String,
    op: Op,
    clients: usize,
    total: usize,
    warmup: usize,
    swarm: String,
    signer: u64,
    key: Option<String>,
}

fn parse_args(raw: Vec<String>) -> Result<Args, String> {
    let mut named: HashMap<String, String> = HashMap::new();
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag:?}"))?;
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        named.insert(name.to_string(), value);
    }
    let take = |name: &str| named.get(name).cloned();
    let number = |name: &str, default: usize| -> Result<usize, String> {
        take(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("--{name}: not a number: {v:?}"))
        })
    };
    let op = match take("op").as_deref() {
        Some("put") => Op::Put,
        Some("get") => Op::Get,
        other => return Err(format!("--op must be put or get, not {other:?}")),
    };
    let args = Args {
        system: take("system").ok_or("--system (pyagent or etcd) is required")?,
        addr: take("addr").ok_or("--addr host:port is required")?,
        op,
        clients: number("clients", 1)?.max(1),
        total: number("total", 1000)?,
        warmup: number("warmup", 100)?,
        swarm: take("swarm").unwrap_or_default(),
        signer: number("signer", 0)? as u64,
        key: take("key"),
    };
    if !matches!(args.system.as_str(), "pyagent" | "etcd") {
        return Err(format!(
            "--system must be pyagent or etcd, not {:?}",
            args.system
        ));
    }
    if args.system == "pyagent" && (args.key.is_none() || args.swarm.is_empty()) {
        return Err("--system pyagent needs --swarm, --signer and --key".into());
    }
    Ok(args)
}

/// One system's requests, cheap to clone into every worker.
#[derive(Clone)]
enum Client {
    Etcd(tonic::client::Grpc<Channel>),
    Pyagent(NodeClient<Channel>, Arc<Signer>),
}

fn key_of(i: usize) -> String {
    format!("k{}", i % KEYS)
}

fn signer_from(args: &Args) -> Result<Signer, String> {
    let path = args.key.as_deref().unwrap_or_default();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let seed = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("{path}: not base64: {e}"))?;
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| format!("{path}: an Ed25519 seed is 32 bytes"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    Ok(Signer::new(args.signer, args.swarm.clone(), key))
}

impl Client {
    async fn request(&mut self, op: Op, i: usize) -> Result<(), Status> {
        match self {
            Client::Etcd(grpc) => {
                grpc.ready()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let key = key_of(i).into_bytes();
                if op == Op::Put {
                    let req = with_timeout(EtcdPut {
                        key,
                        value: vec![b'v'; VALUE_BYTES],
                    });
                    let path = PathAndQuery::from_static("/etcdserverpb.KV/Put");
                    let codec = tonic_prost::ProstCodec::<EtcdPut, Ignored>::default();
                    grpc.unary(req, path, codec).await?;
                } else {
                    let req = with_timeout(EtcdRange { key });
                    let path = PathAndQuery::from_static("/etcdserverpb.KV/Range");
                    let codec = tonic_prost::ProstCodec::<EtcdRange, Ignored>::default();
                    grpc.unary(req, path, codec).await?;
                }
                Ok(())
            }
            Client::Pyagent(node, signer) => {
                if op == Op::Get {
                    let req = proto::GetRequest {
                        key: key_of(i),
                        stale: false,
                    };
                    node.get(with_timeout(req)).await?;
                    return Ok(());
                }
                let put = proto::Put {
                    key: key_of(i),
                    value: vec![b'v'; VALUE_BYTES],
                    fence: None,
                };
                let command = proto::Command {
                    op: Some(proto::command::Op::Put(put)),
                }
                .encode_to_vec();
                let seq = signer.next_seq();
                let signed = proto::SignedCommand {
                    signature: signer.sign_command(seq, &command),
                    command,
                    signer: signer.node_id,
                    seq,
                };
                let result = node.submit(with_timeout(signed)).await?.into_inner();
                if !result.applied {
                    return Err(Status::internal(format!(
                        "put refused: {} {}",
                        result.refusal, result.message
                    )));
                }
                Ok(())
            }
        }
    }

    /// The request, retried while the server answers UNAVAILABLE or it times out.
    async fn request_retrying(&mut self, op: Op, i: usize) -> Result<u32, Status> {
        let mut retries = 0;
        loop {
            match self.request(op, i).await {
                Ok(()) => return Ok(retries),
                Err(s)
                    if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded)
                        && retries < MAX_RETRIES =>
                {
                    retries += 1
                }
                Err(s) => return Err(s),
            }
        }
    }
}

fn with_timeout<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(TIMEOUT);
    req
}

struct Outcome {
    elapsed: f64,
    latencies: Vec<f64>,
    retries: u32,
}

/// `total` requests by `clients` workers, each one request at a time.
async fn run(client: &Client, op: Op, clients: usize, total: usize) -> Result<Outcome, Status> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (mut client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut retries = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, Status>((latencies, retries));
                    }
                    let t = Instant::now();
                    retries += client.request_retrying(op, i).await?;
                    latencies.push(t.elapsed().as_secs_f64());
                }
            })
        })
        .collect();
    let mut outcome = Outcome {
        elapsed: 0.0,
        latencies: Vec::with_capacity(total),
        retries: 0,
    };
    for worker in workers {
        let (latencies, retries) = worker
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        outcome.latencies.extend(latencies);
        outcome.retries += retries;
    }
    outcome.elapsed = start.elapsed().as_secs_f64();
    Ok(outcome)
}

async fn connect(args: &Args) -> Result<Client, String> {
    let endpoint = Endpoint::from_shared(format!("http://{}", args.addr))
        .map_err(|e| format!("--addr {}: {e}", args.addr))?
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.addr))?;
    Ok(match args.system.as_str() {
        "etcd" => Client::Etcd(tonic::client::Grpc::new(channel)),
        _ => Client::Pyagent(NodeClient::new(channel), Arc::new(signer_from(args)?)),
    })
}

async fn bench(args: Args) -> Result<Outcome, String> {
    let client = connect(&args).await?;
    let failed = |s: Status| {
        format!(
            "{} {}: {:?} {}",
            args.system,
            args.addr,
            s.code(),
            s.message()
        )
    };
    // Warm-up (connection windows, leader caches), with writes whatever the op, as the old
    // Python driver did.
    run(&client, Op::Put, args.clients.min(8), args.warmup)
        .await
        .map_err(failed)?;
    run(&client, args.op, args.clients, args.total)
        .await
        .map_err(failed)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raft-load: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread, as each node of the local target runs, so the client takes little of the
    // machine's two cores from the servers it measures.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raft-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(o) => {
            let out = serde_json::json!({
                "elapsed": o.elapsed,
                "latencies": o.latencies,
                "retries": o.retries,
            });
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raft-load: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        parse_args(line.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn arguments_are_read_and_checked() {
        let a = parse("--system etcd --addr 127.0.0.1:1 --op get --clients 64 --total 10").unwrap();
        assert!(a.op == Op::Get && a.clients == 64 && a.total == 10 && a.warmup == 100);
        let a = parse("--system pyagent --addr h:1 --op put --swarm s --signer 3 --key k").unwrap();
        assert!(a.op == Op::Put && a.signer == 3 && a.key.as_deref() == Some("k"));
        for (line, says) in [
            ("--system pyagent --addr h:1 --op put", "needs --swarm"),
            ("--system zk --addr h:1 --op put", "--system must be"),
            ("--system etcd --addr h:1 --op scan", "--op must be"),
            (
                "--system etcd --addr h:1 --op put --clients many",
                "not a number",
            ),
            ("--system etcd --op put", "--addr"),
            ("--system etcd --addr", "needs a value"),
            ("etcd", "unexpected argument"),
        ] {
            let err = parse(line).err().unwrap_or_default();
            assert!(err.contains(says), "{line:?}: {err:?}");
        }
    }
}
