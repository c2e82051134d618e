//! The sandbox's start-up cost: `true` bare vs sandboxed, p50 over 50 runs per level. Prints a
//! table; asserts nothing about time (machines here are noisy). Run with:
//! `cargo test -p pyagent-sandbox --release --test overhead -- --ignored --nocapture`

mod common;

use std::time::{Duration, Instant};

use common::*;
use pyagent_sandbox::IsolationLevel;

const RUNS: usize = 50;

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
#[ignore = "a measurement, not a test: run it by hand (see the module docs)"]
async fn overhead_of_true() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("overhead");
    let ws = root.sub("ws");
    let mut bare = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let st = tokio::process::Command::new("/bin/true")
            .status()
            .await
            .unwrap();
        assert!(st.success());
        bare.push(t.elapsed());
    }
    let bare = p50(bare);
    println!("{:<34} {:>10} {:>10}", "", "p50", "overhead");
    println!("{:<34} {:>10.2?} {:>10}", "bare /bin/true", bare, "-");
    // The anchor: bwrap alone with the same namespaces and mounts, no helper, no Landlock,
    // no seccomp, no cgroup: the part of the cost that is bubblewrap's and the kernel's.
    let bwrap = pyagent_sandbox::probe().bwrap.expect("bwrap");
    let mut anchor = Vec::new();
    for _ in 0..RUNS {
        let mut cmd = tokio::process::Command::new(&bwrap);
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
                Err(_) if std::path::Path::new(dir).is_dir() => {
                    cmd.args(["--ro-bind", dir, dir]);
                }
                Err(_) => {}
            }
        }
        cmd.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
        cmd.arg("--bind").arg(&ws).arg("/workspace");
        cmd.args(["--chdir", "/workspace", "/bin/true"]);
        let t = Instant::now();
        assert!(cmd.status().await.unwrap().success());
        anchor.push(t.elapsed());
    }
    let anchor = p50(anchor);
    println!(
        "{:<34} {:>10.2?} {:>10.2?}",
        "bwrap alone (same namespaces)",
        anchor,
        anchor.saturating_sub(bare)
    );
    for level in [
        IsolationLevel::Namespaces,
        IsolationLevel::LandlockSeccomp,
        IsolationLevel::LimitsOnly,
    ] {
        for cgroup in [true, false] {
            let mut s = common::spec(level, &["/bin/true"], &ws);
            if !cgroup {
                s.cgroup_parent = None;
            }
            let mut times = Vec::new();
            for _ in 0..RUNS {
                let t = Instant::now();
                let o = pyagent_sandbox::run(&s).await.unwrap();
                assert!(o.success());
                times.push(t.elapsed());
            }
            let p = p50(times);
            let label = format!("{level}{}", if cgroup { " + cgroup" } else { "" });
            println!("{label:<34} {p:>10.2?} {:>10.2?}", p.saturating_sub(bare));
        }
    }
}
