//! `pyagent-node`: run a swarm node, or create its identity key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pyagent_node::{config, identity, node};

const USAGE: &str = "usage:
  pyagent-node run --config <node.json> [--members <members.json>]
  pyagent-node check-config --config <node.json> [--members <members.json>] [--pod-name <name>]
  pyagent-node keygen --data-dir <dir>
  pyagent-node --version";

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\n{USAGE}");
    ExitCode::from(2)
}

fn flag(args: &[String], name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("{name} needs a value")),
    }
}

/// The log filter `PYAGENT_LOG` (or `RUST_LOG`) asks for: a level (`debug`, ...), or tracing's
/// per-target directives (`info,openraft=info,openraft::replication=debug`) to look into one
/// part of openraft without the volume of all of it at debug.
fn log_filter(spec: &str) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::Targets;
    let spec = spec.trim().to_ascii_lowercase();
    if spec.contains('=') || spec.contains(',') {
        if let Ok(targets) = spec.parse::<Targets>() {
            return targets;
        }
        eprintln!("warning: cannot parse the log filter {spec:?}; logging at info");
    }
    let level = match spec.as_str() {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    // openraft's INFO lines dump whole Raft states: only its warnings unless asked for debug.
    // Its heartbeat worker warns on every failed heartbeat, one per interval per peer that is
    // down; `net::PeerHealth` logs an outage once as it starts and once as it ends instead.
    let (openraft, heartbeat) = if level >= tracing::Level::DEBUG {
        (level, level)
    } else {
        (tracing::Level::WARN, tracing::Level::ERROR)
    };
    Targets::new()
        .with_default(level)
        .with_target("openraft", openraft)
        .with_target("openraft::core::heartbeat", heartbeat)
}

fn init_logging() {
    let spec = std::env::var("PYAGENT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(log_filter(&spec))
        .init();
}

fn main() -> ExitCode {
    // The daemon is its own sandbox exec helper: started with the helper's argument, it confines
    // itself and runs a step's command, and never returns here (pyagent-sandbox, docs/sandbox.md).
    pyagent_sandbox::helper::main_if_invoked();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V" | "version") => {
            println!("pyagent-node {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("keygen") => keygen(&args[1..]),
        Some("run") => run(&args[1..]),
        Some("check-config") => check_config(&args[1..]),
        Some(other) => usage_error(&format!("unknown command {other:?}")),
        None => usage_error("missing command"),
    }
}

fn keygen(args: &[String]) -> ExitCode {
    let dir = match flag(args, "--data-dir") {
        Ok(Some(d)) => PathBuf::from(d),
        Ok(None) => return usage_error("keygen needs --data-dir <dir>"),
        Err(e) => return usage_error(&e),
    };
    match identity::load_or_create(&dir) {
        Ok(k) => {
            println!("{}", identity::public_key_b64(&k));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// Reads and checks the configuration `args` name; `pod_name` stands for `POD_NAME`.
fn load_config(args: &[String], pod_name: Option<String>) -> Result<config::NodeConfig, ExitCode> {
    let (config_path, members_path) = match (flag(args, "--config"), flag(args, "--members")) {
        (Ok(Some(c)), Ok(m)) => (PathBuf::from(c), m.map(PathBuf::from)),
        (Ok(None), _) => return Err(usage_error("needs --config <node.json>")),
        (Err(e), _) | (_, Err(e)) => return Err(usage_error(&e)),
    };
    let text = read(&config_path).map_err(|e| config_error(&e))?;
    let members = match &members_path {
        Some(p) => Some((
            p.display().to_string(),
            read(p).map_err(|e| config_error(&e))?,
        )),
        None => None,
    };
    let base = match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    config::parse(
        &config_path.display().to_string(),
        &text,
        &base,
        members.as_ref().map(|(s, t)| (s.as_str(), t.as_str())),
        pod_name,
    )
    .map_err(|e| config_error(&e.to_string()))
}

/// `check-config`: what `run` would make of a configuration, as JSON on stdout, without
/// starting anything (exit 2 and the error as `run` gives it otherwise).
fn check_config(args: &[String]) -> ExitCode {
    let pod_name = match flag(args, "--pod-name") {
        Ok(p) => p.or_else(|| std::env::var("POD_NAME").ok()),
        Err(e) => return usage_error(&e),
    };
    let cfg = match load_config(args, pod_name) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let summary = serde_json::json!({
        "swarm": cfg.swarm,
        "pool": cfg.pool,
        "nodeId": cfg.node_id,
        "name": cfg.name,
        "join": cfg.join,
        "bootstrapper": cfg.is_bootstrapper(),
        "dataDir": cfg.data_dir,
        "listen": {"raft": cfg.listen_raft.to_string(), "grpc": cfg.listen_grpc.to_string(),
                   "metrics": cfg.listen_metrics.to_string()},
        "members": cfg.members.iter().map(|m| serde_json::json!({
            "nodeId": m.node_id, "name": m.name, "raft": m.raft, "grpc": m.grpc, "voter": m.voter,
        })).collect::<Vec<_>>(),
        "seed": cfg.kubernetes.as_ref().and_then(|k| k.seed()).map(|(id, raft, grpc)| {
            serde_json::json!({"nodeId": id, "raft": raft, "grpc": grpc})
        }),
    });
    println!("{summary:#}");
    ExitCode::SUCCESS
}

fn run(args: &[String]) -> ExitCode {
    let mut cfg = match load_config(args, std::env::var("POD_NAME").ok()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let key = match identity::load_or_create(&cfg.data_dir) {
        Ok(k) => k,
        Err(e) => {
            // The data folder, not the configuration (issue 24: this read "error: config ...").
            eprintln!(
                "error: data dir {}: {e} (the node's identity key is kept there: check the \
                 folder's permissions and free space, or restore its identity.key)",
                cfg.data_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    let own = identity::public_key_b64(&key);
    if cfg.kubernetes.is_some() {
        // A pod's key is made in its volume on first start; its member entry carries it.
        if let Some(me) = cfg.members.iter_mut().find(|m| m.node_id == cfg.node_id) {
            me.public_key = Some(own.clone());
        }
    }
    if let Some(me) = cfg.me() {
        if me.public_key.as_deref() != Some(own.as_str()) {
            return config_error(&format!(
                "membership: publicKey of node {} does not match {} ({own})",
                cfg.node_id,
                identity::key_path(&cfg.data_dir).display()
            ));
        }
    }
    init_logging();
    let rt = match runtime(cfg.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let listeners = match node::Listeners::bind(&cfg) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let (id, grpc, raft, metrics) = (
            cfg.node_id,
            cfg.listen_grpc,
            cfg.listen_raft,
            cfg.listen_metrics,
        );
        let node = match node::start(cfg, key, listeners).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(node = id, %raft, %grpc, %metrics, "pyagent-node running");
        wait_for_signal().await;
        node.leave_if_scaled_down().await;
        tracing::info!("stopping");
        node.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn config_error(msg: &str) -> ExitCode {
    eprintln!("error: config {msg}");
    ExitCode::from(2)
}

/// The async runtime `runtime.workerThreads` asks for. One thread is a current-thread runtime:
/// when several nodes share a machine (the local target), hand-offs between tasks then cost no
/// cross-thread wake-ups (measured with 3 nodes on 2 cores: ~20% more writes at 64 clients).
fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(n) = worker_threads.filter(|n| *n > 1) {
        builder.worker_threads(n);
    }
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn log_filter_takes_a_level_or_directives() {
        let plain = log_filter("");
        assert!(plain.would_enable("pyagent_node::api", &Level::INFO));
        assert!(!plain.would_enable("pyagent_node::api", &Level::DEBUG));
        assert!(!plain.would_enable("openraft::core", &Level::INFO));
        assert!(plain.would_enable("openraft::core", &Level::WARN));
        assert!(!plain.would_enable("openraft::core::heartbeat::worker", &Level::WARN));
        assert!(plain.would_enable("openraft::core::heartbeat::worker", &Level::ERROR));
        let debug = log_filter("DEBUG");
        assert!(debug.would_enable("openraft::core", &Level::DEBUG));
        assert!(debug.would_enable("openraft::core::heartbeat::worker", &Level::WARN));
        let targeted = log_filter("info,openraft=info,openraft::replication=debug");
        assert!(targeted.would_enable("openraft::core", &Level::INFO));
        assert!(!targeted.would_enable("openraft::core", &Level::DEBUG));
        assert!(targeted.would_enable("openraft::replication::stream_state", &Level::DEBUG));
        assert!(targeted.would_enable("pyagent_node::net", &Level::INFO));
    }
}
