//! Real MCP servers from PyPI (`mcp-server-time`, `mcp-server-git`) and a testing server on the
//! official Python SDK, each started in the real sandbox by a session, called, and faulted.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pyagent_mcp::{McpSessions, SessionConfig};
use pyagent_sandbox::IsolationLevel;
use serde_json::json;

fn time_server() -> pyagent_mcp::ToolServer {
    stdio("time", &[&venv_bin("mcp-server-time")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_server_lists_its_tools_and_tells_the_time() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("time");
    let sessions = McpSessions::new(config(&ws.0));
    let server = time_server();
    let tools = sessions.list_tools(&server).await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["get_current_time", "convert_time"]);

    let paris = sessions
        .call(
            &server,
            Some("get_current_time"),
            args(json!({"timezone": "Europe/Paris"})),
        )
        .await
        .unwrap();
    assert_eq!(paris["timezone"], "Europe/Paris", "{paris}");
    let datetime = paris["datetime"].as_str().unwrap();
    assert!(
        datetime.ends_with("+01:00") || datetime.ends_with("+02:00"),
        "{datetime}"
    );

    // The same server serves the task's later steps.
    let converted = sessions
        .call(
            &server,
            Some("convert_time"),
            args(
                json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(converted["target"]["timezone"], "Asia/Tokyo", "{converted}");
    assert!(converted["target"]["datetime"]
        .as_str()
        .unwrap()
        .contains("T21:00:00"));
    sessions.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tools_and_tool_errors_are_coded_and_named() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("errors");
    let sessions = McpSessions::new(config(&ws.0));
    let server = time_server();

    let e = sessions
        .call(&server, Some("get_time"), args(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA733", "{e}");
    let text = e.to_string();
    assert!(
        text.contains("\"time\"") && text.contains("\"get_time\""),
        "{text}"
    );
    assert!(text.contains("get_current_time, convert_time"), "{text}");

    // The server has two tools: naming only the server is ambiguous.
    let e = sessions
        .call(&server, None, args(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA733", "{e}");
    assert!(e.to_string().contains("it has 2"), "{e}");

    let e = sessions
        .call(
            &server,
            Some("get_current_time"),
            args(json!({"timezone": "Mars/Olympus_Mons"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA735", "{e}");
    let text = e.to_string();
    assert!(
        text.contains("\"get_current_time\"") && text.contains("Mars/Olympus_Mons"),
        "{text}"
    );

    // A tool error leaves the server serving.
    let ok = sessions
        .call(
            &server,
            Some("get_current_time"),
            args(json!({"timezone": "UTC"})),
        )
        .await
        .unwrap();
    assert_eq!(ok["timezone"], "UTC");
    sessions.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_git_server_reads_a_repository_in_the_workspace() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("git");
    let git = |a: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args(a)
            .current_dir(&ws.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    ws.write("README.md", "hello\n");
    git(&["add", "README.md"]);
    git(&["commit", "-q", "-m", "the first commit"]);
    ws.write("untracked.txt", "new\n");

    let sessions = McpSessions::new(config(&ws.0));
    let server = stdio(
        "git",
        &[&venv_bin("mcp-server-git"), "--repository", "/workspace"],
    );
    let repo = json!({"repo_path": "/workspace"});
    let status = sessions
        .call(&server, Some("git_status"), args(repo.clone()))
        .await
        .unwrap();
    let status = status.as_str().expect("git_status answers text");
    assert!(
        status.contains("untracked.txt") && status.contains("main"),
        "{status}"
    );

    let log = sessions
        .call(&server, Some("git_log"), args(repo))
        .await
        .unwrap();
    assert!(log.to_string().contains("the first commit"), "{log}");

    // Confined to /workspace by its own --repository: a refusal is the tool's error.
    let e = sessions
        .call(
            &server,
            Some("git_status"),
            args(json!({"repo_path": "/etc"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(e.code(), "PA735" | "PA737"), "{e}");
    sessions.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_start_is_pa731_naming_it() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("bogus");
    let mut c = config(&ws.0);
    c.start_timeout = Duration::from_secs(30);
    let sessions = McpSessions::new(c);
    let server = stdio("bogus", &["no-such-mcp-server-anywhere", "--stdio"]);
    let started = Instant::now();
    let e = sessions
        .call(&server, Some("x"), args(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA731", "{e}");
    let text = e.to_string();
    assert!(
        text.contains("\"bogus\"") && text.contains("no-such-mcp-server-anywhere"),
        "{text}"
    );
    assert!(
        text.contains("127"),
        "the exit status is part of the message: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_initialize_is_pa732_and_killed() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("hang");
    ws.write("never_initializes.py", NEVER_INITIALIZES);
    let token = format!("hang-token-{}", unique());
    let mut c = config(&ws.0);
    c.start_timeout = Duration::from_secs(5);
    let sessions = McpSessions::new(c);
    let server = stdio(
        "silent",
        &["/usr/bin/python3", "never_initializes.py", &token],
    );
    let started = Instant::now();
    let e = sessions
        .call(&server, Some("x"), args(json!({})))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.code(), "PA732", "{e}");
    assert!(e.to_string().contains("\"silent\""), "{e}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(30),
        "{took:?}"
    );
    assert!(
        processes_with(&token).is_empty(),
        "the hung server was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_crashes_mid_call_is_pa736_and_the_next_call_starts_it_again() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("crash");
    ws.write("testing_server.py", TESTING_SERVER);
    let sessions = McpSessions::new(config(&ws.0));
    let server = stdio("testing", &[&venv_bin("python"), "testing_server.py"]);
    let echoed = sessions
        .call(&server, Some("echo"), args(json!({"value": "one"})))
        .await
        .unwrap();
    assert_eq!(
        echoed,
        json!({"result": "one"}),
        "a typed result is structured content"
    );
    let e = sessions
        .call(&server, Some("crash"), args(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA736", "{e}");
    assert!(
        e.to_string().contains("\"testing\"") && e.to_string().contains("\"crash\""),
        "{e}"
    );
    let echoed = sessions
        .call(&server, Some("echo"), args(json!({"value": "two"})))
        .await
        .unwrap();
    assert_eq!(echoed["result"], "two");
    sessions.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_timeout_is_pa734_and_the_server_tree_is_killed() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("slow");
    ws.write("testing_server.py", TESTING_SERVER);
    let mut c = config(&ws.0);
    c.call_timeout = Duration::from_secs(3);
    let sessions = McpSessions::new(c);
    let server = stdio("testing", &[&venv_bin("python"), "testing_server.py"]);
    let marker = 900_000_000 + unique();
    let e = sessions
        .call(&server, Some("hold"), args(json!({"marker": marker})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA734", "{e}");
    assert!(e.to_string().contains("\"hold\""), "{e}");
    let sleep = format!("sleep {marker}");
    assert!(
        processes_with(&sleep).is_empty(),
        "the server's child was killed with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_sessions_mid_call_kills_the_server_tree() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("drop");
    ws.write("testing_server.py", TESTING_SERVER);
    let token = format!("drop-token-{}", unique());
    let sessions = McpSessions::new(config(&ws.0));
    let server = stdio(
        "testing",
        &[&venv_bin("python"), "testing_server.py", &token],
    );
    let marker = 900_000_000 + unique();
    let sleep = format!("sleep {marker}");
    {
        let call = sessions.call(&server, Some("hold"), args(json!({"marker": marker})));
        tokio::pin!(call);
        let held = await_condition("the held call's child", Duration::from_secs(60), || {
            !processes_with(&sleep).is_empty()
        });
        tokio::select! {
            r = &mut call => panic!("hold returned: {r:?}"),
            () = held => {}
        }
    }
    assert!(!processes_with(&token).is_empty());
    drop(sessions);
    assert!(
        processes_with(&token).is_empty(),
        "the server is gone once dropped"
    );
    assert!(processes_with(&sleep).is_empty(), "and its child too");
}

/// Steps of a task running in parallel share one server: concurrent first calls start it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_server() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("concurrent");
    ws.write("testing_server.py", TESTING_SERVER);
    let token = format!("concurrent-token-{}", unique());
    let sessions = McpSessions::new(config(&ws.0));
    let server = stdio(
        "testing",
        &[&venv_bin("python"), "testing_server.py", &token],
    );
    let calls = (0..4).map(|i| {
        let (sessions, server) = (&sessions, &server);
        async move {
            sessions
                .call(
                    server,
                    Some("echo"),
                    args(json!({"value": format!("v{i}")})),
                )
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap()["result"], format!("v{i}"));
    }
    // One server (the sandboxed python; with namespaces, bwrap's own processes do not carry
    // the token in their command line).
    let pythons: Vec<_> = processes_with(&token)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("python"))
        })
        .collect();
    assert_eq!(pythons.len(), 1, "{pythons:?}");
    sessions.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_servers_go() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("shutdown");
    ws.write("testing_server.py", TESTING_SERVER);
    let token = format!("shutdown-token-{}", unique());
    let sessions = McpSessions::new(config(&ws.0));
    let server = stdio(
        "testing",
        &[&venv_bin("python"), "testing_server.py", &token],
    );
    sessions
        .call(&server, Some("echo"), args(json!({"value": "x"})))
        .await
        .unwrap();
    assert!(!processes_with(&token).is_empty());
    sessions.shutdown().await;
    assert!(processes_with(&token).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_namespaces_the_servers_still_run() {
    if !require_host() {
        return;
    }
    let ws = Workspace::new("fallback");
    let mut c: SessionConfig = config(&ws.0);
    c.sandbox.max_isolation = IsolationLevel::LandlockSeccomp;
    c.sandbox.min_isolation = IsolationLevel::LandlockSeccomp;
    let sessions = McpSessions::new(c);
    let out = sessions
        .call(
            &time_server(),
            Some("get_current_time"),
            args(json!({"timezone": "UTC"})),
        )
        .await
        .unwrap();
    assert_eq!(out["timezone"], "UTC");
    sessions.shutdown().await;
}

/// The owner of a session (a daemon) killed with -9 mid-call: its server, and the server's own
/// child, die with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_owner_mid_call_leaves_no_server_behind() {
    if !require_host() {
        return;
    }
    for level in [IsolationLevel::Namespaces, IsolationLevel::LandlockSeccomp] {
        let ws = Workspace::new("kill9");
        ws.write("testing_server.py", TESTING_SERVER);
        let token = format!("kill9-token-{}", unique());
        let marker = 900_000_000 + unique();
        let request = json!({
            "workspace": ws.0,
            "server": stdio("testing", &[&venv_bin("python"), "testing_server.py", &token]),
            "readOnly": [venv()],
            "tool": "hold",
            "arguments": {"marker": marker},
            "isolation": level,
            "cgroupParent": CGROUP_PARENT,
        });
        let mut owner = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyagent-mcp-call"))
            .arg(request.to_string())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let sleep = format!("sleep {marker}");
        await_condition("the held call's child", Duration::from_secs(90), || {
            !processes_with(&sleep).is_empty()
        })
        .await;
        assert!(
            !processes_with(&token).is_empty(),
            "{level}: the server runs"
        );
        owner.start_kill().unwrap(); // SIGKILL
        owner.wait().await.unwrap();
        await_condition(
            &format!("{level}: the server and its child gone after kill -9 of the owner"),
            Duration::from_secs(30),
            || processes_with(&token).is_empty() && processes_with(&sleep).is_empty(),
        )
        .await;
    }
    // What the dead owner left: its (now empty) cgroups, as a daemon restarting would reap them.
    let _ = pyagent_sandbox::reap_orphans(CGROUP_PARENT);
}
