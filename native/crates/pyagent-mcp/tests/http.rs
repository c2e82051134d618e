//! MCP servers over streamable HTTP: a real server on the official Python SDK (its `MCPServer`
//! under uvicorn, tests/data/tools/http_server.py, the one `pyagent tools lock` is tested with),
//! reached by a session at its URL or by its port, called, refused and lost.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use pyagent_mcp::{McpSessions, ToolServer, Transport};
use serde_json::json;

/// The test server, listening on a free port of 127.0.0.1; killed on drop.
struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn start() -> HttpServer {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../tests/data/tools/http_server.py");
        let mut child = Command::new(venv().join("bin/python"))
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the venv's python runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("port ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the test server did not start: {line:?}"));
        HttpServer { child, port }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http(url: Option<String>, port: Option<u16>) -> ToolServer {
    ToolServer {
        name: "search".into(),
        transport: Transport::Http,
        command: vec![],
        url,
        port,
    }
}

/// No sandbox is involved (nothing is started), so these tests need neither root nor bwrap.
fn sessions() -> McpSessions {
    let ws = std::env::temp_dir();
    let mut c = config(&ws);
    c.start_timeout = Duration::from_secs(30);
    McpSessions::new(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_server_lists_its_tools_and_answers_calls_by_url_and_by_port() {
    let server = HttpServer::start();
    for declared in [
        http(Some(format!("http://127.0.0.1:{}/mcp", server.port)), None),
        http(None, Some(server.port)),
    ] {
        let sessions = sessions();
        let tools = sessions.list_tools(&declared).await.unwrap();
        let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["lookup"]);
        let out = sessions
            .call(
                &declared,
                Some("lookup"),
                args(json!({"query": "raft", "limit": 2})),
            )
            .await
            .unwrap();
        assert!(out.to_string().contains("2 results for raft"), "{out}");
        // The step named the server only: its one tool.
        let out = sessions
            .call(&declared, None, args(json!({"query": "mesh"})))
            .await
            .unwrap();
        assert!(out.to_string().contains("5 results for mesh"), "{out}");
        sessions.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_failures_are_coded_and_name_the_url() {
    let mut server = HttpServer::start();
    let declared = http(None, Some(server.port));
    let sessions = sessions();
    // Arguments that do not match the tool's schema: the server refuses the call.
    let e = sessions
        .call(&declared, Some("lookup"), args(json!({"limit": 1})))
        .await
        .unwrap_err();
    assert!(["PA735", "PA737"].contains(&e.code()), "{}: {e}", e.code());
    assert!(e.to_string().contains("lookup"), "{e}");
    // The server goes away mid-session: the call fails, coded, and the next start names the URL.
    server.kill();
    let e = sessions
        .call(&declared, Some("lookup"), args(json!({"query": "x"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA736", "{e}");
    let e = sessions
        .call(&declared, Some("lookup"), args(json!({"query": "x"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA731", "{e}");
    assert!(
        e.to_string()
            .contains(&format!("http://127.0.0.1:{}/mcp", server.port)),
        "{e}"
    );
    // TLS is not spoken: refused before anything is sent.
    let e = sessions
        .list_tools(&http(Some("https://search.example/mcp".into()), None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "PA738", "{e}");
}
