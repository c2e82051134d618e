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
