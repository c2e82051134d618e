//! The executor's MCP client: a task's `mcp` steps call tools of its core's MCP servers, which
//! this crate starts in the task's sandbox on first use, keeps for the task's later steps, and
//! shuts down (or kills) when the task ends. Built on `rmcp`, the official Rust MCP SDK.
//!
//! ```no_run
//! # async fn demo(servers: Vec<pyagent_mcp::ToolServer>) -> Result<(), pyagent_mcp::McpError> {
//! use pyagent_mcp::{arguments, resolve, McpSessions, SessionConfig};
//! use pyagent_sandbox::SandboxSpec;
//! // One per task; the template names the task's workspace and the node's sandbox settings.
//! let sessions = McpSessions::new(SessionConfig::new(SandboxSpec::new(vec![], "/srv/tasks/t1".into())));
//! let (server, tool) = resolve(&servers, "time.get_current_time")?;
//! let step_args = serde_json::json!({"timezone": "UTC"});
//! let inputs = serde_json::Map::new();
//! let output = sessions
//!     .call(server, tool, arguments(step_args.as_object().unwrap(), &inputs))
//!     .await?;
//! println!("{output}");
//! sessions.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Semantics of an `mcp` step
//!
//! - `tool: <server>.<tool>` calls MCP tool `<tool>` of the core's server `<server>`;
//!   `tool: <server>` calls the server's only tool (an error if it has several): [`resolve`].
//! - The tool's arguments are the step's `arguments` with its bound inputs over them (inputs
//!   win): [`arguments`].
//! - The output (type `json`) is the result's `structuredContent`, else its content blocks
//!   (text parsed as JSON where it is JSON): [`step_output`]. `isError` is [`McpError::ToolError`].
//!
//! # Processes
//!
//! A stdio server runs under [`pyagent_sandbox::spawn`]: the task's sandbox (namespaces,
//! Landlock, seccomp, cgroup limits, the sandbox user, the workspace writable), with a clean
//! environment (`PATH`, `HOME` = the workspace, `TMPDIR`, `PYAGENT_WORKSPACE`, `LANG` and what
//! [`SessionConfig::server_env`] gives it). No server outlives its session: dropping
//! [`McpSessions`] kills every server's tree, [`McpSessions::shutdown`] closes stdin first and
//! kills after a grace period, and a daemon killed with -9 takes its servers along
//! (the sandbox helper watches the daemon's pidfd and kills bwrap, and so its pid namespace).
//!
//! An http server (`transport: http`) is not started: the session reaches it over streamable
//! HTTP at its `url` (http:// only) or at `http://127.0.0.1:<port>/mcp`, with rmcp's own client.
//!
//! # Errors
//!
//! Every failure is an [`McpError`] with a stable code (PA730 to PA738) and a message naming the
//! server and the tool.

mod error;
mod output;
mod server;
mod session;

pub use error::McpError;
pub use output::step_output;
pub use rmcp::model::Tool;
pub use server::{arguments, resolve, ToolServer, Transport};
pub use session::{McpSessions, SessionConfig};
