//! Runs one command in the sandbox and prints the outcome: a hand tool for trying the walls.
//!
//! ```text
//! cargo run -p pyagent-sandbox --example run -- [--level namespaces|landlock_seccomp|limits_only]
//!     [--net] [--cgroup PARENT] [--wall SECS] [--cpu MILLICORES] WORKSPACE -- COMMAND [ARGS...]
//! ```
//! The exec helper is looked up next to the example (build it first:
//! `cargo build -p pyagent-sandbox --bins`), or taken from `$PYAGENT_SANDBOX_EXEC`.

use std::path::PathBuf;
use std::time::Duration;

use pyagent_sandbox::{IsolationLevel, SandboxSpec};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut level = IsolationLevel::Namespaces;
    let mut network = false;
    let mut cgroup = None;
    let mut wall = 60;
    let mut cpu_millis = None;
    let mut workspace = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--" => break,
            "--net" => network = true,
            "--level" => {
                level = match args.next().as_deref() {
                    Some("namespaces") => IsolationLevel::Namespaces,
                    Some("landlock_seccomp") => IsolationLevel::LandlockSeccomp,
                    Some("limits_only") => IsolationLevel::LimitsOnly,
                    other => usage(&format!("unknown level {other:?}")),
                }
            }
            "--cgroup" => cgroup = args.next(),
            "--wall" => wall = args.next().and_then(|s| s.parse().ok()).unwrap_or(60),
            "--cpu" => cpu_millis = args.next().and_then(|s| s.parse().ok()),
            _ if workspace.is_none() => workspace = Some(PathBuf::from(arg)),
            _ => usage(&format!("unexpected {arg:?}")),
        }
    }
    let argv: Vec<String> = args.collect();
    let Some(workspace) = workspace else {
        usage("no workspace")
    };
    let mut spec = SandboxSpec::new(argv, workspace);
    spec.network = network;
    spec.max_isolation = level;
    spec.min_isolation = IsolationLevel::LimitsOnly;
    spec.cgroup_parent = cgroup;
    spec.limits.wall = Duration::from_secs(wall);
    if let Some(m) = cpu_millis {
        spec.limits.cpu_millis = m;
    }
    if std::env::var_os("PYAGENT_SANDBOX_EXEC").is_none() {
        // examples live in target/<profile>/examples, the helper in target/<profile>.
        let exe = std::env::current_exe().expect("current exe");
        spec.helper = exe
            .parent()
            .and_then(|d| d.parent())
            .map(|d| d.join("pyagent-sandbox-exec"));
    }
    match pyagent_sandbox::run(&spec).await {
        Ok(o) => {
            print!("{}", String::from_utf8_lossy(&o.stdout));
            eprint!("{}", String::from_utf8_lossy(&o.stderr));
            eprintln!(
                "-- exit {:?} signal {:?} killed {:?} isolation {} landlock {} cgroup {} pids_hit {} truncated {}/{} in {:?}{}",
                o.exit_code,
                o.signal,
                o.killed,
                o.isolation,
                o.landlock,
                o.cgroup_limits,
                o.pids_limit_hit,
                o.stdout_truncated,
                o.stderr_truncated,
                o.elapsed,
                o.fallback_reason.map(|r| format!(" (fell back: {r})")).unwrap_or_default()
            );
        }
        Err(e) => {
            eprintln!("error[{}]: {e}\n  = hint: {}", e.code(), e.hint());
            std::process::exit(1);
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!("{why}\nusage: run [--level L] [--net] [--cgroup PARENT] [--wall SECS] [--cpu MILLICORES] WORKSPACE -- COMMAND [ARGS...]");
    std::process::exit(2)
}
