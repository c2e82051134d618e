//! Each wall of the sandbox, attacked for real, at both the namespace level and the fallback.
//! Needs root and bwrap (see `common::require_host`).

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use pyagent_sandbox::{IsolationLevel, KillReason};

#[tokio::test]
async fn a_file_outside_the_workspace_is_not_readable() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("secret");
    let ws = root.sub("ws");
    // "The node's key": world-readable, so only the sandbox keeps it from the command.
    let keydir = root.sub("node-data");
    let key = keydir.join("node.key");
    std::fs::write(&key, "SECRET-KEY-MATERIAL").unwrap();
    open_to_all(&key);
    for level in LEVELS {
        let script = format!(
            "cat {k}; ls {d}; exit 0",
            k = key.display(),
            d = keydir.display()
        );
        let o = run(&sh(level, &script, &ws)).await;
        assert!(
            !text(&o.stdout).contains("SECRET"),
            "{level}: read the key: {o:?}"
        );
        assert!(
            !text(&o.stdout).contains("node.key"),
            "{level}: listed the key's dir: {o:?}"
        );
        assert!(
            !text(&o.stderr).is_empty(),
            "{level}: no error from cat/ls: {o:?}"
        );
        if level == IsolationLevel::Namespaces {
            // Not even visible: the node's data dir is not mounted.
            let o = run(&sh(level, &format!("test -e {}", keydir.display()), &ws)).await;
            assert_eq!(o.exit_code, Some(1), "{level}: the key's dir is visible");
        }
    }
}

#[tokio::test]
async fn another_tasks_workspace_is_neither_readable_nor_writable() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("two-ws");
    let mine = root.sub("task-a");
    let theirs = root.sub("task-b");
    let their_file = theirs.join("result.txt");
    std::fs::write(&their_file, "THEIR-RESULT").unwrap();
    open_to_all(&their_file);
    for level in LEVELS {
        let script = format!(
            "cat {f}; echo overwritten > {f}; echo new > {d}/planted; ls {d}; exit 0",
            f = their_file.display(),
            d = theirs.display()
        );
        let o = run(&sh(level, &script, &mine)).await;
        assert!(
            !text(&o.stdout).contains("THEIR-RESULT"),
            "{level}: read it: {o:?}"
        );
        assert!(
            !text(&o.stdout).contains("result.txt"),
            "{level}: listed it: {o:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&their_file).unwrap(),
            "THEIR-RESULT",
            "{level}: overwrote it"
        );
        assert!(!theirs.join("planted").exists(), "{level}: planted a file");
    }
}

#[tokio::test]
async fn nothing_outside_the_workspace_is_writable() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("write");
    let ws = root.sub("ws");
    let other = root.sub("other-ws");
    let stamp = format!("pyagent-escape-{}", marker());
    let targets = [
        format!("/usr/{stamp}"),
        format!("/etc/{stamp}"),
        format!("{}/{stamp}", other.display()),
        format!("{}/{stamp}", root.0.display()),
    ];
    for level in LEVELS {
        let mut script = String::new();
        for t in &targets {
            script.push_str(&format!("echo x > {t} && echo WROTE {t}; "));
        }
        script.push_str("echo inside > ./mine.txt; echo tmp > $TMPDIR/t && cat $TMPDIR/t");
        let o = run(&sh(level, &script, &ws)).await;
        assert!(!text(&o.stdout).contains("WROTE"), "{level}: {o:?}");
        for t in &targets {
            assert!(
                !std::path::Path::new(t).exists(),
                "{level}: {t} was written"
            );
        }
        // The workspace and the temp dir are writable, and the workspace's files reach the host.
        assert_eq!(o.exit_code, Some(0), "{level}: {o:?}");
        assert_eq!(text(&o.stdout).trim(), "tmp");
        assert_eq!(
            std::fs::read_to_string(ws.join("mine.txt")).unwrap(),
            "inside\n"
        );
        std::fs::remove_file(ws.join("mine.txt")).unwrap();
    }
}

#[tokio::test]
async fn no_socket_without_network_and_one_with_it() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("net");
    let ws = root.sub("ws");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED");
    let inet = "import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM); print('SOCKET')";
    for level in LEVELS {
        let o = run(&common::spec(level, &["/bin/bash", "-c", &connect], &ws)).await;
        assert!(
            !text(&o.stdout).contains("CONNECTED"),
            "{level}: connected: {o:?}"
        );
        assert!(
            listener.accept().is_err(),
            "{level}: the listener got a connection"
        );
        let o = run(&common::spec(level, &["/usr/bin/python3", "-c", inet], &ws)).await;
        assert!(
            !text(&o.stdout).contains("SOCKET"),
            "{level}: made an AF_INET socket: {o:?}"
        );
        // Unix sockets stay: programs' own IPC works without the network.
        let unix = "import socket; socket.socketpair(); print('UNIX')";
        let o = run(&common::spec(level, &["/usr/bin/python3", "-c", unix], &ws)).await;
        assert_eq!(text(&o.stdout).trim(), "UNIX", "{level}: {o:?}");

        let mut allowed = common::spec(level, &["/bin/bash", "-c", &connect], &ws);
        allowed.network = true;
        let o = run(&allowed).await;
        assert!(
            text(&o.stdout).contains("CONNECTED"),
            "{level}: no connection with network: {o:?}"
        );
        // The connection sits in the backlog even though the client is gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match listener.accept() {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("{level}: the listener never saw the allowed connection: {e}"),
            }
        }
    }
}

#[tokio::test]
async fn killed_at_the_wall_clock_limit_with_its_whole_tree() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("wall");
    let ws = root.sub("ws");
    for level in LEVELS {
        let m = marker();
        // A child and a grandchild, both sleeping far past the limit.
        let script = format!("sleep 1000.{m} & sleep 1000.{m}; wait");
        let mut s = sh(level, &script, &ws);
        s.limits.wall = Duration::from_secs(1);
        let o = run(&s).await;
        assert_eq!(o.killed, Some(KillReason::WallClock), "{level}: {o:?}");
        assert_eq!(o.exit_code, None);
        assert!(
            o.elapsed < Duration::from_secs(60),
            "{level}: took {:?}",
            o.elapsed
        );
        assert_eq!(
            processes_with(&format!("1000.{m}")),
            Vec::<u32>::new(),
            "{level}: survivors"
        );
    }
}

#[tokio::test]
async fn killed_at_the_memory_limit() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("mem");
    let ws = root.sub("ws");
    for level in LEVELS {
        // 1 GiB, every page written (a bytes object is filled, not lazily zeroed).
        let grab = "x = b'a' * (1 << 30); print('ALLOCATED')";
        let mut s = common::spec(level, &["/usr/bin/python3", "-c", grab], &ws);
        s.limits.memory_bytes = 64 << 20;
        let o = run(&s).await;
        assert_eq!(o.killed, Some(KillReason::Memory), "{level}: {o:?}");
        assert_eq!(o.signal, Some(9), "{level}: {o:?}");
        assert!(!text(&o.stdout).contains("ALLOCATED"));
        let peak = o.memory_peak_bytes.expect("a peak with a cgroup");
        assert!(peak > 16 << 20 && peak <= 64 << 20, "{level}: peak {peak}");
    }
}

#[tokio::test]
async fn a_fork_bomb_is_contained() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("bomb");
    let ws = root.sub("ws");
    for level in LEVELS {
        let mut s = common::spec(
            level,
            &["/bin/bash", "-c", "b() { b | b & }; b; sleep 5"],
            &ws,
        );
        s.limits.pids = 32;
        s.limits.cpu_millis = 500;
        s.limits.wall = Duration::from_secs(5);
        let started = Instant::now();
        let o = run(&s).await;
        assert!(
            o.pids_limit_hit,
            "{level}: the bomb never reached pids.max: {o:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{level}: took {:?}",
            started.elapsed()
        );
        // The host is fine: it can still start processes, and the run left none behind.
        assert!(std::process::Command::new("true")
            .status()
            .unwrap()
            .success());
    }
}

#[tokio::test]
async fn output_floods_are_capped() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("flood");
    let ws = root.sub("ws");
    for level in LEVELS {
        let mut s = sh(
            level,
            "head -c 50000000 /dev/zero; head -c 5000000 /dev/zero >&2; echo done >&2",
            &ws,
        );
        s.limits.output_bytes = 64 << 10;
        let o = run(&s).await;
        assert_eq!(o.exit_code, Some(0), "{level}");
        assert_eq!(o.stdout.len(), 64 << 10);
        assert_eq!(o.stderr.len(), 64 << 10);
        assert!(o.stdout_truncated && o.stderr_truncated);
        // Under the cap nothing is flagged.
        let o = run(&sh(level, "echo small", &ws)).await;
        assert_eq!(o.stdout, b"small\n");
        assert!(!o.stdout_truncated && !o.stderr_truncated);
    }
}

#[tokio::test]
async fn no_new_privs_and_seccomp_are_on_and_the_user_is_unprivileged() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("status");
    let ws = root.sub("ws");
    for level in LEVELS {
        let o = run(&common::spec(
            level,
            &["/bin/cat", "/proc/self/status"],
            &ws,
        ))
        .await;
        let status = text(&o.stdout);
        assert!(
            status.lines().any(|l| l == "NoNewPrivs:\t1"),
            "{level}: {status}"
        );
        assert!(
            status.lines().any(|l| l == "Seccomp:\t2"),
            "{level}: {status}"
        );
        assert!(
            status.lines().any(|l| l == "CapEff:\t0000000000000000"),
            "{level}: {status}"
        );
        assert!(o.landlock, "{level}: Landlock not fully enforced: {o:?}");
        let o = run(&common::spec(level, &["/usr/bin/id", "-u"], &ws)).await;
        assert_eq!(text(&o.stdout).trim(), "65534", "{level}");
        // Escape attempts seccomp stops: a new user namespace (root inside it), ptrace.
        let o = run(&common::spec(
            level,
            &["/usr/bin/unshare", "-Ur", "id", "-u"],
            &ws,
        ))
        .await;
        assert!(
            !o.success() && !text(&o.stdout).contains('0'),
            "{level}: unshare worked: {o:?}"
        );
        let traceme = "import ctypes; print(ctypes.CDLL(None, use_errno=True).ptrace(0, 0, 0, 0), ctypes.get_errno())";
        let o = run(&common::spec(
            level,
            &["/usr/bin/python3", "-c", traceme],
            &ws,
        ))
        .await;
        assert_eq!(
            text(&o.stdout).trim(),
            "-1 1",
            "{level}: ptrace(TRACEME) was not EPERM: {o:?}"
        );
    }
}

#[tokio::test]
async fn the_fallback_is_reported_when_forced() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("levels");
    let ws = root.sub("ws");
    let mut s = sh(IsolationLevel::LandlockSeccomp, "echo ok", &ws);
    s.min_isolation = IsolationLevel::LimitsOnly;
    let o = pyagent_sandbox::run(&s).await.unwrap();
    assert_eq!(o.isolation, IsolationLevel::LandlockSeccomp);
    assert_eq!(text(&o.stdout), "ok\n");
    s.max_isolation = IsolationLevel::LimitsOnly;
    let o = pyagent_sandbox::run(&s).await.unwrap();
    assert_eq!(o.isolation, IsolationLevel::LimitsOnly);
    assert!(!o.landlock);
    let o = run(&common::spec(IsolationLevel::Namespaces, &["true"], &ws)).await;
    assert_eq!(o.isolation, IsolationLevel::Namespaces);
    assert!(o.cgroup_limits);
}

#[tokio::test]
async fn dropping_the_run_kills_its_tree() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("cancel");
    let ws = root.sub("ws");
    for level in LEVELS {
        let m = marker();
        let s = sh(
            level,
            &format!("sleep 1000.{m} & sleep 1000.{m}; wait"),
            &ws,
        );
        let run = pyagent_sandbox::run(&s);
        // Cancel once both sleeps are running (awaited, not a fixed sleep).
        let watch = async {
            while processes_with(&format!("1000.{m}")).len() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            r = run => panic!("{level}: the run ended by itself: {r:?}"),
            _ = tokio::time::timeout(Duration::from_secs(60), watch) => {}
        }
        assert_eq!(
            processes_with(&format!("1000.{m}")),
            Vec::<u32>::new(),
            "{level}: survivors"
        );
    }
}

#[tokio::test]
async fn bad_specs_are_errors_not_panics() {
    let root = TestDir::new("bad");
    let ws = root.sub("ws");
    let level = IsolationLevel::LandlockSeccomp;
    let code = |s: &pyagent_sandbox::SandboxSpec| {
        let s = s.clone();
        async move {
            pyagent_sandbox::run(&s)
                .await
                .unwrap_err()
                .code()
                .to_string()
        }
    };
    assert_eq!(
        code(&common::spec(level, &[], &ws)).await,
        "sandbox.invalid_spec"
    );
    assert_eq!(
        code(&common::spec(level, &["a\0b"], &ws)).await,
        "sandbox.invalid_spec"
    );
    assert_eq!(
        code(&common::spec(level, &["true"], &ws.join("missing"))).await,
        "sandbox.workspace"
    );
    let mut s = common::spec(level, &["true"], &ws);
    s.cgroup_parent = Some("../escape".into());
    assert_eq!(code(&s).await, "sandbox.invalid_spec");
    let mut s = common::spec(level, &["true"], &ws);
    s.min_isolation = IsolationLevel::Namespaces;
    assert_eq!(code(&s).await, "sandbox.invalid_spec");
    let mut s = common::spec(level, &["true"], &ws);
    s.helper = Some(ws.join("no-helper"));
    assert_eq!(code(&s).await, "sandbox.helper_missing");
    // A workspace that would hand the host over is refused (before any chown).
    for place in ["/", "/tmp", "/etc/pyagent-ws", "/usr/local/share"] {
        let s = common::spec(level, &["true"], std::path::Path::new(place));
        let c = code(&s).await;
        assert!(c == "sandbox.workspace", "{place}: {c}");
    }
    let mut s = common::spec(level, &["true"], &ws);
    s.limits.wall = Duration::ZERO;
    assert_eq!(code(&s).await, "sandbox.invalid_spec");
}

#[tokio::test]
async fn a_missing_command_is_an_exit_code_not_an_error() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("missing");
    let ws = root.sub("ws");
    for level in LEVELS {
        let o = run(&common::spec(level, &["no-such-command-xyz"], &ws)).await;
        assert_eq!(o.exit_code, Some(127), "{level}: {o:?}");
    }
}

#[tokio::test]
async fn what_a_dead_daemon_left_is_reaped() {
    use std::os::unix::process::ExitStatusExt;
    if !require_host() {
        return;
    }
    // A pid no process has any more: a child that already finished.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let name = format!("run-{dead_pid}-0-deadbeef");
    // Its run's cgroup, as a crashed daemon leaves it: with a process still inside.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut dirs = Vec::new();
    for ctrl in ["memory", "pids", "cpu", "freezer"] {
        let Some(path) = own
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ':');
                f.next();
                f.next().zip(f.next())
            })
            .find(|(c, _)| c.split(',').any(|c| c == ctrl))
            .map(|(_, p)| p.trim_start_matches('/').to_string())
        else {
            panic!("no cgroup v1 {ctrl} hierarchy (this test knows v1 only)");
        };
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(path)
            .join(CGROUP_PARENT)
            .join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
        dirs.push(dir);
    }
    let found = pyagent_sandbox::reap_orphans(CGROUP_PARENT).unwrap();
    assert!(found >= 1, "found {found}");
    let status = sleeper.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the leftover process was not killed"
    );
    for dir in dirs {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}

#[tokio::test]
async fn the_daemons_environment_does_not_leak_in() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("env");
    let ws = root.sub("ws");
    // The test process has plenty (CARGO_*, HOME, PATH, ...); none of it may reach the command.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    for level in LEVELS {
        let mut s = common::spec(level, &["/usr/bin/env"], &ws);
        s.env = vec![("STEP_INPUT".into(), "42".into())];
        let o = run(&s).await;
        let mut names: Vec<String> = text(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["HOME", "PATH", "PYAGENT_WORKSPACE", "STEP_INPUT", "TMPDIR"],
            "{level}"
        );
    }
}

#[tokio::test]
async fn with_namespaces_the_hosts_processes_and_name_are_invisible() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("pidns");
    let ws = root.sub("ws");
    let me = std::process::id();
    let script =
        format!("test -e /proc/{me} && echo SEES-HOST; hostname; ls /proc | grep -c '^[0-9]'");
    let o = run(&sh(IsolationLevel::Namespaces, &script, &ws)).await;
    let out = text(&o.stdout);
    assert!(!out.contains("SEES-HOST"), "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("pyagent-sandbox"));
    // bwrap's init, the helper, sh, and sh's children: a handful, not the host's hundreds.
    let count: u32 = lines.next().unwrap().trim().parse().unwrap();
    assert!(count < 10, "{count} processes visible");
}

#[tokio::test]
async fn giving_the_workspace_to_the_sandbox_user_gives_nothing_outside() {
    use std::os::unix::fs::MetadataExt;
    if !require_host() {
        return;
    }
    let root = TestDir::new("chown");
    let ws = root.sub("ws");
    let outside = root.0.join("outside.txt");
    std::fs::write(&outside, "host file").unwrap();
    // What a hostile earlier run could leave: a symlink and a hard link to a file outside.
    std::os::unix::fs::symlink(&outside, ws.join("link")).unwrap();
    std::fs::hard_link(&outside, ws.join("hard")).unwrap();
    std::fs::create_dir_all(ws.join("deep/er")).unwrap();
    std::fs::write(ws.join("deep/er/input.txt"), "in").unwrap();
    let o = run(&sh(
        IsolationLevel::LandlockSeccomp,
        "echo out >> deep/er/input.txt",
        &ws,
    ))
    .await;
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    let meta = std::fs::metadata(&outside).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "the outside file changed hands"
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "host file");
    assert_eq!(
        std::fs::metadata(ws.join("deep/er/input.txt"))
            .unwrap()
            .uid(),
        65534
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("deep/er/input.txt")).unwrap(),
        "inout\n"
    );
}

#[tokio::test]
async fn cpu_is_held_to_its_quota() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("cpu");
    let ws = root.sub("ws");
    // Spin for 1.5 s of wall time and report the CPU time got. At 50 millicores the kernel
    // allows 5 ms per 100 ms period: about 0.075 s. A load on the machine can only lower it, so
    // the bound cannot flake; without the quota one idle core would give 1.5 s.
    let spin = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.5: pass\nprint(time.process_time())";
    for level in LEVELS {
        let mut s = common::spec(level, &["/usr/bin/python3", "-c", spin], &ws);
        s.limits.cpu_millis = 50;
        let o = run(&s).await;
        let cpu: f64 = text(&o.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{level}: {o:?}"));
        assert!(
            cpu < 0.3,
            "{level}: {cpu} s of CPU in 1.5 s at 50 millicores"
        );
    }
}

#[tokio::test]
async fn the_private_tmp_and_shm_are_size_capped() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("tmpcap");
    let ws = root.sub("ws");
    for dir in ["/tmp", "/dev/shm"] {
        // 8 MiB into a 1 MiB tmpfs: the write fails, and no memory limit is needed to stop it.
        let script =
            format!("head -c 8388608 /dev/zero > {dir}/fill; echo rc=$?; wc -c < {dir}/fill");
        let mut s = sh(IsolationLevel::Namespaces, &script, &ws);
        s.limits.tmp_bytes = 1 << 20;
        s.cgroup_parent = None;
        let o = run(&s).await;
        let out = text(&o.stdout);
        assert!(out.contains("rc=1"), "{dir}: {out} {}", text(&o.stderr));
        let kept: u64 = out.lines().last().unwrap().trim().parse().unwrap();
        assert!(kept <= 1 << 20, "{dir}: {kept} bytes kept");
    }
    // Beyond the capped mounts nothing is writable, /dev/null still is.
    let script = "echo x > /dev/null && echo null-ok; echo x > /dev/fill || echo dev-refused; echo x > /fill || echo root-refused";
    let o = run(&sh(IsolationLevel::Namespaces, script, &ws)).await;
    assert_eq!(
        text(&o.stdout),
        "null-ok\ndev-refused\nroot-refused\n",
        "{o:?}"
    );
}
