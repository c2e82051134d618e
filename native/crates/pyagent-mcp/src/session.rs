//! One task's MCP servers: started on first use, kept for the task's later steps, shut down
//! (or killed) when the task ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyagent_sandbox::{SandboxSpec, SandboxedChild};
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{Peer, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tokio::time::{timeout_at, Instant};

use crate::error::McpError;
use crate::output::step_output;
use crate::server::{ToolServer, Transport};

/// How a task's servers run. One per task: the sandbox template names the task's workspace.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Each stdio server runs as this spec with `argv` = the server's command and `env` =
    /// `LANG=C.UTF-8` plus [`SessionConfig::server_env`] (the sandbox adds `PATH`, `HOME` =
    /// the workspace, `TMPDIR` and `PYAGENT_WORKSPACE`; nothing of the daemon's environment).
    /// The workspace, limits, isolation, cgroup parent, network and read-only paths (where
    /// servers are installed, if not under the system dirs) are the executor's choice.
    /// `limits.wall` does not apply: a server lives as long as its session.
    pub sandbox: SandboxSpec,
    /// Extra environment (secrets, say) per server name, as the spec gives it.
    pub server_env: BTreeMap<String, Vec<(String, String)>>,
    /// From spawning a server to its answer to `initialize` and `tools/list`.
    pub start_timeout: Duration,
    /// One `tools/call`.
    pub call_timeout: Duration,
    /// How long [`McpSessions::shutdown`] lets a server exit on its own (stdin closed) before
    /// killing it.
    pub shutdown_grace: Duration,
}

impl SessionConfig {
    /// Defaults: 30 s to start, 60 s per call, 2 s to exit.
    pub fn new(sandbox: SandboxSpec) -> Self {
        SessionConfig {
            sandbox,
            server_env: BTreeMap::new(),
            start_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// A task's MCP sessions. Servers start on first use and serve the task's later steps; calls
/// may run concurrently (one server answers several at once). A server that crashed or hung is
/// killed and forgotten, so that a retried step starts it afresh.
///
/// Dropping it kills every server's whole process tree (sandbox cgroup or process group); the
/// servers also die with the daemon (the sandbox helper watches its pidfd). Prefer
/// [`McpSessions::shutdown`] at the end of a task: it lets each server exit on its own first.
pub struct McpSessions {
    config: SessionConfig,
    servers: Mutex<HashMap<String, Arc<OnceCell<Arc<Connection>>>>>,
}

/// A running server: the MCP client over its pipes, and the sandboxed process.
struct Connection {
    name: String,
    peer: Peer<RoleClient>,
    service: Mutex<Option<RunningService<RoleClient, ()>>>,
    child: Mutex<Option<SandboxedChild>>,
    tools: Vec<Tool>,
}

impl McpSessions {
    pub fn new(config: SessionConfig) -> Self {
        McpSessions {
            config,
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// The server's tools (starting it if needed).
    pub async fn list_tools(&self, server: &ToolServer) -> Result<Vec<Tool>, McpError> {
        Ok(self.connect(server).await?.tools.clone())
    }

    /// Calls `tool` of `server` with `arguments` and returns the step's output
    /// ([`crate::step_output`]). `tool` `None` (the step named only the server) calls the
    /// server's one tool, and is [`McpError::UnknownTool`] when it has several or none.
    pub async fn call(
        &self,
        server: &ToolServer,
        tool: Option<&str>,
        arguments: Map<String, Value>,
    ) -> Result<Value, McpError> {
        let conn = self.connect(server).await?;
        let tool = conn.pick(tool)?;
        let params = CallToolRequestParams::new(tool.clone()).with_arguments(arguments);
        let deadline = Instant::now() + self.config.call_timeout;
        let answer = timeout_at(deadline, conn.peer.call_tool(params)).await;
        let result = match answer {
            Err(_) => {
                // A hung server would hang the task's later calls too: kill it now.
                self.forget(&conn).await;
                return Err(McpError::CallTimeout {
                    server: conn.name.clone(),
                    tool,
                    after: self.config.call_timeout,
                });
            }
            Ok(Err(e)) => return Err(self.call_failed(&conn, tool, e).await),
            Ok(Ok(result)) => result,
        };
        step_output(result).map_err(|message| McpError::ToolError {
            server: conn.name.clone(),
            tool,
            message,
        })
    }

    /// Ends every server: closes its stdin (an MCP stdio server exits on that), waits up to
    /// [`SessionConfig::shutdown_grace`], then kills what is left, whole trees.
    pub async fn shutdown(&self) {
        let cells: Vec<_> = match self.servers.lock() {
            Ok(mut servers) => servers.drain().map(|(_, c)| c).collect(),
            Err(_) => return,
        };
        let grace = self.config.shutdown_grace;
        let conns: Vec<_> = cells.iter().filter_map(|c| c.get().cloned()).collect();
        futures_util::future::join_all(conns.iter().map(|conn| conn.close(grace))).await;
    }

    async fn connect(&self, server: &ToolServer) -> Result<Arc<Connection>, McpError> {
        let cell = match self.servers.lock() {
            Ok(mut servers) => servers.entry(server.name.clone()).or_default().clone(),
            Err(_) => {
                return Err(McpError::Start {
                    server: server.name.clone(),
                    message: "the session is poisoned (a call panicked)".into(),
                })
            }
        };
        // A failed start leaves the cell empty: the next call tries again.
        cell.get_or_try_init(|| self.start(server))
            .await
            .map(Arc::clone)
    }

    async fn start(&self, server: &ToolServer) -> Result<Arc<Connection>, McpError> {
        let name = server.name.clone();
        if server.transport == Transport::Http {
            return self.start_http(server).await;
        }
        if server.command.is_empty() {
            return Err(McpError::Unsupported {
                server: name,
                message: "a stdio server needs a command".into(),
            });
        }
        let deadline = Instant::now() + self.config.start_timeout;
        let timed_out = |stderr: String| McpError::StartTimeout {
            server: server.name.clone(),
            after: self.config.start_timeout,
            stderr: if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("; its stderr: {}", stderr.trim())
            },
        };
        let spec = self.server_spec(server);
        let mut child = match timeout_at(deadline, pyagent_sandbox::spawn(&spec)).await {
            Err(_) => return Err(timed_out(String::new())),
            Ok(Err(e)) => {
                return Err(McpError::Start {
                    server: name,
                    message: format!("sandbox: {e} [{}]; {}", e.code(), e.hint()),
                })
            }
            Ok(Ok(child)) => child,
        };
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            return Err(McpError::Start {
                server: name,
                message: "the sandbox gave no stdin or stdout pipe".into(),
            });
        };
        let (service, tools) = match timeout_at(deadline, handshake((stdout, stdin))).await {
            Err(_) => {
                let stderr = child.stderr_tail();
                child.kill().await;
                return Err(timed_out(stderr));
            }
            Ok(Err(e)) => {
                let ended = ended(&mut child).await;
                child.kill().await;
                return Err(McpError::Start {
                    server: name,
                    message: format!("{e}; {ended}"),
                });
            }
            Ok(Ok(started)) => started,
        };
        Ok(Arc::new(Connection {
            name,
            peer: service.peer().clone(),
            service: Mutex::new(Some(service)),
            child: Mutex::new(Some(child)),
            tools,
        }))
    }

    /// Connects to a server over streamable HTTP (MCP 2025-03-26 and later) with the SDK's own
    /// client: `initialize` and `tools/list` within the start timeout. Nothing is started, so
    /// nothing is left to kill: closing the session ends the client (and its HTTP session).
    async fn start_http(&self, server: &ToolServer) -> Result<Arc<Connection>, McpError> {
        let url = http_url(server)?;
        let deadline = Instant::now() + self.config.start_timeout;
        let transport = StreamableHttpClientTransport::from_uri(url.as_str());
        let (service, tools) = match timeout_at(deadline, handshake(transport)).await {
            Err(_) => {
                return Err(McpError::StartTimeout {
                    server: server.name.clone(),
                    after: self.config.start_timeout,
                    stderr: format!(" (at {url})"),
                })
            }
            Ok(Err(e)) => {
                return Err(McpError::Start {
                    server: server.name.clone(),
                    message: format!("{url}: {e}"),
                })
            }
            Ok(Ok(started)) => started,
        };
        Ok(Arc::new(Connection {
            name: server.name.clone(),
            peer: service.peer().clone(),
            service: Mutex::new(Some(service)),
            child: Mutex::new(None),
            tools,
        }))
    }

    fn server_spec(&self, server: &ToolServer) -> SandboxSpec {
        let mut spec = self.config.sandbox.clone();
        spec.argv = server.command.clone();
        spec.env = vec![("LANG".to_string(), "C.UTF-8".to_string())];
        if let Some(env) = self.config.server_env.get(&server.name) {
            spec.env.extend(env.iter().cloned());
        }
        spec
    }

    async fn call_failed(&self, conn: &Arc<Connection>, tool: String, e: ServiceError) -> McpError {
        let server = conn.name.clone();
        match e {
            ServiceError::McpError(data) => McpError::Protocol {
                server,
                tool,
                message: format!("{} (JSON-RPC error {})", data.message, data.code.0),
            },
            ServiceError::UnexpectedResponse => McpError::Protocol {
                server,
                tool,
                message: "the answer is not a tool result".into(),
            },
            other => {
                // The pipes are gone or broken: the server is of no more use to this task.
                let ended = match conn.take_child() {
                    Some(mut child) => {
                        let why = ended(&mut child).await;
                        child.kill().await;
                        why
                    }
                    None => String::new(),
                };
                self.forget(conn).await;
                McpError::Crashed {
                    server,
                    tool,
                    message: format!("{other}; {ended}"),
                }
            }
        }
    }

    /// Kills the server and removes it, if it is still the one registered under its name.
    async fn forget(&self, conn: &Arc<Connection>) {
        if let Ok(mut servers) = self.servers.lock() {
            let same = servers
                .get(&conn.name)
                .and_then(|cell| cell.get())
                .is_some_and(|c| Arc::ptr_eq(c, conn));
            if same {
                servers.remove(&conn.name);
            }
        }
        conn.close(Duration::ZERO).await;
    }
}

impl Connection {
    fn pick(&self, tool: Option<&str>) -> Result<String, McpError> {
        let names: Vec<&str> = self.tools.iter().map(|t| t.name.as_ref()).collect();
        let unknown = |message: String| McpError::UnknownTool {
            server: self.name.clone(),
            message,
            available: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        };
        match tool {
            Some(t) if names.contains(&t) => Ok(t.to_string()),
            Some(t) => Err(unknown(format!("no tool {t:?}"))),
            None if names.len() == 1 => Ok(names[0].to_string()),
            None => Err(unknown(format!(
                "the step names the server only, so it must have exactly one tool, but it has {}",
                names.len()
            ))),
        }
    }

    fn take_child(&self) -> Option<SandboxedChild> {
        self.child.lock().ok().and_then(|mut c| c.take())
    }

    /// Closes the client (the server's stdin), lets the server exit within `grace`, then kills
    /// its tree.
    async fn close(&self, grace: Duration) {
        let service = self.service.lock().ok().and_then(|mut s| s.take());
        if let Some(service) = service {
            let _ =
                tokio::time::timeout(grace.max(Duration::from_millis(100)), service.cancel()).await;
        }
        if let Some(mut child) = self.take_child() {
            let _ = tokio::time::timeout(grace, child.wait()).await;
            child.kill().await;
        }
    }
}

/// `initialize` and `tools/list` over `transport` (a stdio server's pipes, or streamable HTTP):
/// the running client and the server's tools, or what failed.
async fn handshake<T, E, A>(
    transport: T,
) -> Result<(RunningService<RoleClient, ()>, Vec<Tool>), String>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let service = ().serve(transport).await.map_err(|e| e.to_string())?;
    let tools = service
        .peer()
        .list_all_tools()
        .await
        .map_err(|e| format!("tools/list: {e}"))?;
    Ok((service, tools))
}

/// The URL of an http server: its `url`, or the MCP endpoint of its `port` on this machine
/// (`http://127.0.0.1:<port>/mcp`, as `pyagent tools lock` asks it). Only plain http: this node
/// has no TLS stack for MCP (PA738); a server elsewhere is reached through a local hop.
fn http_url(server: &ToolServer) -> Result<String, McpError> {
    let unsupported = |message: String| McpError::Unsupported {
        server: server.name.clone(),
        message,
    };
    match (&server.url, server.port) {
        (Some(url), _) if url.starts_with("http://") => Ok(url.clone()),
        (Some(url), _) => Err(unsupported(format!(
            "{url}: only http:// URLs are spoken by this node (no TLS for MCP yet)"
        ))),
        (None, Some(port)) => Ok(format!("http://127.0.0.1:{port}/mcp")),
        (None, None) => Err(unsupported("an http server needs a url or a port".into())),
    }
}

/// How the server ended, for an error message: its exit status (if it exited within a moment)
/// and the end of its stderr.
async fn ended(child: &mut SandboxedChild) -> String {
    let (status, stderr) = match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(Ok(status)) => (
            format!("it exited ({status})"),
            child.stderr_tail_at_exit(Duration::from_secs(2)).await,
        ),
        _ => ("it is still running".to_string(), child.stderr_tail()),
    };
    let stderr = stderr.trim();
    if stderr.is_empty() {
        status
    } else {
        format!("{status}; its stderr: {stderr}")
    }
}
