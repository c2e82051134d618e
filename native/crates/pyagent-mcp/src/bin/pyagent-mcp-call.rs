//! One MCP session from the command line, for tests and benchmarks/mcp.py: starts a server in
//! the sandbox, lists its tools or calls one (several times), prints one JSON line per result,
//! and shuts the server down. Doubles as the sandbox's exec helper.
//!
//! ```text
//! pyagent-mcp-call '{"workspace": "/tmp/ws/t1", "server": {...ToolServer...},
//!                    "tool": "get_current_time", "arguments": {"timezone": "UTC"}, "calls": 3}'
//! ```
//!
//! Output lines: `{"tools": [names]}` for `"list": true`; per call `{"output": value,
//! "micros": n}` or `{"error": {"code": "PA73x", "message": "..."}, "micros": n}`; the first
//! call's `micros` include starting the server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyagent_mcp::{McpSessions, SessionConfig, ToolServer};
use pyagent_sandbox::{IsolationLevel, SandboxSpec};
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Request {
    workspace: PathBuf,
    server: ToolServer,
    #[serde(default)]
    read_only: Vec<PathBuf>,
    #[serde(default)]
    list: bool,
    tool: Option<String>,
    #[serde(default)]
    arguments: Map<String, Value>,
    #[serde(default = "one")]
    calls: u32,
    isolation: Option<IsolationLevel>,
    cgroup_parent: Option<String>,
    start_timeout_ms: Option<u64>,
    call_timeout_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

fn main() {
    pyagent_sandbox::helper::main_if_invoked();
    let Some(text) = std::env::args().nth(1) else {
        eprintln!("usage: pyagent-mcp-call '<request JSON>' (see the source's doc comment)");
        std::process::exit(2);
    };
    let request: Request = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pyagent-mcp-call: bad request: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let failed = runtime.block_on(session(request));
    std::process::exit(i32::from(failed));
}

async fn session(r: Request) -> bool {
    let mut sandbox = SandboxSpec::new(Vec::new(), r.workspace);
    sandbox.read_only = r.read_only;
    // This binary is the helper (`main_if_invoked`), whatever else lies beside it.
    sandbox.helper = std::env::current_exe().ok();
    sandbox.cgroup_parent = r.cgroup_parent;
    if let Some(level) = r.isolation {
        sandbox.max_isolation = level;
        sandbox.min_isolation = level;
    }
    let mut config = SessionConfig::new(sandbox);
    if let Some(ms) = r.start_timeout_ms {
        config.start_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = r.call_timeout_ms {
        config.call_timeout = Duration::from_millis(ms);
    }
    let sessions = McpSessions::new(config);
    let mut failed = false;
    if r.list {
        match sessions.list_tools(&r.server).await {
            Ok(tools) => {
                let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
                println!("{}", json!({ "tools": names }));
            }
            Err(e) => {
                failed = true;
                println!(
                    "{}",
                    json!({"error": {"code": e.code(), "message": e.to_string()}})
                );
            }
        }
    }
    if r.tool.is_some() || !r.list {
        for _ in 0..r.calls {
            let started = Instant::now();
            let result = sessions
                .call(&r.server, r.tool.as_deref(), r.arguments.clone())
                .await;
            let micros = started.elapsed().as_micros() as u64;
            let line = match result {
                Ok(output) => json!({"output": output, "micros": micros}),
                Err(e) => {
                    failed = true;
                    json!({"error": {"code": e.code(), "message": e.to_string()}, "micros": micros})
                }
            };
            println!("{line}");
        }
    }
    sessions.shutdown().await;
    failed
}
