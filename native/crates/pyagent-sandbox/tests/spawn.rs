//! `spawn`: a long-lived command on piped stdin and stdout, at each level, under the walls.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The command talks over the pipes, as the sandbox user, in a clean environment, and the
/// read-only path is readable but not writable; dropping the child kills its tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_command_talks_over_its_pipes_confined_and_dies_on_drop() {
    if !require_host() {
        return;
    }
    for (i, level) in LEVELS.into_iter().enumerate() {
        let dir = TestDir::new("spawn");
        let ws = dir.sub("ws");
        let tools = dir.sub("tools");
        std::fs::write(tools.join("tool.txt"), "tool\n").unwrap();
        // The background `sleep` is the tree's mark on the host's process list.
        let seconds = 700_000_000 + u64::from(std::process::id()) * 10 + i as u64;
        let marker = seconds.to_string();
        let script = format!(
            "names=$(env | cut -d= -f1 | grep -v -x -e PWD -e OLDPWD -e SHLVL -e _ | sort | tr '\\n' ,); \
             echo \"$(id -u) $HOME $(cat {tools}/tool.txt) $names\"; \
             if echo x > {tools}/new 2>/dev/null; then echo writable; else echo read-only; fi; \
             sleep {marker} & exec cat",
            tools = tools.display()
        );
        let mut spec = sh(level, &script, &ws);
        spec.read_only = vec![std::fs::canonicalize(&tools).unwrap()];
        spec.env = vec![("LANG".into(), "C.UTF-8".into())];
        let mut child = pyagent_sandbox::spawn(&spec).await.unwrap();
        assert_eq!(child.isolation, level);
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = out.next_line().await.unwrap().unwrap();
        let home = if level == pyagent_sandbox::IsolationLevel::Namespaces {
            "/workspace".to_string()
        } else {
            std::fs::canonicalize(&ws).unwrap().display().to_string()
        };
        assert_eq!(
            first,
            format!("65534 {home} tool HOME,LANG,PATH,PYAGENT_WORKSPACE,TMPDIR,"),
            "{level}"
        );
        assert_eq!(
            out.next_line().await.unwrap().unwrap(),
            "read-only",
            "{level}"
        );
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"ping\n").await.unwrap();
        assert_eq!(out.next_line().await.unwrap().unwrap(), "ping", "{level}");
        assert!(
            !processes_with(&marker).is_empty(),
            "{level}: the mark runs"
        );
        drop(child);
        assert!(
            processes_with(&marker).is_empty(),
            "{level}: the tree is gone"
        );
        assert!(!tools.join("new").exists());
    }
}

/// A command that does not exist exits 127 with the reason on stderr; it is not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_exits_127_with_the_reason() {
    if !require_host() {
        return;
    }
    for level in LEVELS {
        let dir = TestDir::new("spawn-missing");
        let ws = dir.sub("ws");
        let mut child = pyagent_sandbox::spawn(&spec(level, &["no-such-command-x"], &ws))
            .await
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(127), "{level}");
        // The stderr drain may lag the exit by a moment: await it.
        let start = std::time::Instant::now();
        while !child.stderr_tail().contains("no-such-command-x") {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{level}: {}",
                child.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_paths_must_be_absolute_canonical_and_apart_from_the_workspace() {
    let dir = TestDir::new("spawn-ro");
    let ws = dir.sub("ws");
    let inside = dir.sub("ws/inside");
    for bad in [
        std::path::PathBuf::from("relative/dir"),
        dir.0.join("missing"),
        dir.0.clone(),
        inside,
        dir.0.join("ws/../ws"),
    ] {
        let mut spec = sh(
            pyagent_sandbox::IsolationLevel::LandlockSeccomp,
            "true",
            &ws,
        );
        spec.read_only = vec![bad.clone()];
        let e = pyagent_sandbox::spawn(&spec).await.unwrap_err();
        assert_eq!(e.code(), "sandbox.invalid_spec", "{}: {e}", bad.display());
    }
}

/// The command lives as long as the daemon, not as long as the thread that spawned it: a
/// `PR_SET_PDEATHSIG` would have killed it when that thread ended (tokio's blocking threads end
/// when idle). Talking to it after the thread is gone proves it still runs.
#[test]
fn a_spawned_command_outlives_the_thread_that_spawned_it() {
    use std::io::{BufRead, Write};
    if !require_host() {
        return;
    }
    for level in LEVELS {
        let dir = TestDir::new("spawn-thread");
        let ws = dir.sub("ws");
        let spec = spec(level, &["cat"], &ws);
        let (child, stdin, stdout) = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut child = pyagent_sandbox::spawn(&spec).await.unwrap();
                let stdin = child.stdin.take().unwrap().into_owned_fd().unwrap();
                let stdout = child.stdout.take().unwrap().into_owned_fd().unwrap();
                (child, stdin, stdout)
            })
        })
        .join()
        .unwrap();
        let mut stdin = std::fs::File::from(stdin);
        let mut stdout = std::io::BufReader::new(std::fs::File::from(stdout));
        stdin.write_all(b"still here\n").unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(
            line, "still here\n",
            "{level}: the command died with the thread"
        );
        drop(child);
    }
}
