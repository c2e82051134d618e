//! The sandbox's start-up cost: `true` bare, under bwrap alone, and sandboxed at each level,
//! p50 over 50 runs each, interleaved (one run of each in turn) so that every row sees the same
//! load on a shared machine. Prints a table; asserts nothing about time. Run with:
//! `cargo test -p pyagent-sandbox --release --test overhead -- --ignored --nocapture`

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pyagent_sandbox::{IsolationLevel, SandboxSpec};

const RUNS: usize = 50;

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

enum Row {
    Bare,
    /// The anchor: bwrap alone with the same namespaces and mounts, no helper, no Landlock,
    /// no seccomp, no cgroup: the part of the cost that is bubblewrap's and the kernel's.
    BwrapAlone,
    Sandbox(Box<SandboxSpec>),
}

fn bwrap_alone(ws: &Path) -> tokio::process::Command {
    let bwrap = pyagent_sandbox::probe().bwrap.expect("bwrap");
    let mut cmd = tokio::process::Command::new(bwrap);
    cmd.args([
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
    ]);
    cmd.args([
        "--unshare-cgroup-try",
        "--unshare-net",
        "--die-with-parent",
        "--new-session",
    ]);
    for dir in [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
    ] {
        match std::fs::read_link(dir) {
            Ok(target) => {
                cmd.arg("--symlink").arg(target).arg(dir);
            }
            Err(_) if Path::new(dir).is_dir() => {
                cmd.args(["--ro-bind", dir, dir]);
            }
            Err(_) => {}
        }
    }
    cmd.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    cmd.arg("--bind").arg(ws).arg("/workspace");
    cmd.args(["--chdir", "/workspace", "/bin/true"]);
    cmd
}

#[tokio::test]
#[ignore = "a measurement, not a test: run it by hand (see the module docs)"]
async fn overhead_of_true() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("overhead");
    let ws = root.sub("ws");
    let mut rows: Vec<(String, Row)> = vec![
        ("bare /bin/true".into(), Row::Bare),
        ("bwrap alone (same namespaces)".into(), Row::BwrapAlone),
    ];
    for level in [
        IsolationLevel::Namespaces,
        IsolationLevel::LandlockSeccomp,
        IsolationLevel::LimitsOnly,
    ] {
        for cgroup in [false, true] {
            let mut s = common::spec(level, &["/bin/true"], &ws);
            if !cgroup {
                s.cgroup_parent = None;
            }
            let label = format!("{level}{}", if cgroup { " + cgroup" } else { "" });
            rows.push((label, Row::Sandbox(Box::new(s))));
        }
    }
    let mut times = vec![Vec::with_capacity(RUNS); rows.len()];
    for _ in 0..RUNS {
        for (i, (_, row)) in rows.iter().enumerate() {
            let t = Instant::now();
            match row {
                Row::Bare => assert!(tokio::process::Command::new("/bin/true")
                    .status()
                    .await
                    .unwrap()
                    .success()),
                Row::BwrapAlone => assert!(bwrap_alone(&ws).status().await.unwrap().success()),
                Row::Sandbox(s) => assert!(pyagent_sandbox::run(s).await.unwrap().success()),
            }
            times[i].push(t.elapsed());
        }
    }
    let p: Vec<Duration> = times.into_iter().map(p50).collect();
    println!(
        "{:<32} {:>10} {:>10} {:>10}",
        "", "p50", "- bare", "- bwrap"
    );
    for ((label, _), t) in rows.iter().zip(&p) {
        println!(
            "{label:<32} {t:>10.2?} {:>10.2?} {:>10.2?}",
            t.saturating_sub(p[0]),
            t.saturating_sub(p[1])
        );
    }
}
