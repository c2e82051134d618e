//! What can go wrong with an MCP server or one of its tools: each kind a stable code (PA730 to
//! PA738, pyagent_compile/diagnostics/codes.py) and a message naming the server and the tool.

use std::time::Duration;

/// An `mcp` step's error. [`McpError::code`] is the step's error code; `Display` its message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The step's `tool` names no server of the core's `tools`.
    #[error("no MCP server {server:?} among the core's tools ({known})")]
    UnknownServer { server: String, known: String },
    /// The server could not be started, or ended or failed the `initialize` handshake.
    #[error("MCP server {server:?} did not start: {message}")]
    Start { server: String, message: String },
    /// The server did not answer `initialize` in time (it was killed).
    #[error("MCP server {server:?} did not answer initialize within {after:?}{stderr}")]
    StartTimeout {
        server: String,
        after: Duration,
        stderr: String,
    },
    /// The server has no such tool, or the step named only the server and it has not exactly
    /// one tool.
    #[error("MCP server {server:?}: {message}; its tools: {available}")]
    UnknownTool {
        server: String,
        message: String,
        available: String,
    },
    /// The call did not return in time (the server was killed; a later call starts it again).
    #[error("MCP server {server:?}, tool {tool:?}: no answer within {after:?}")]
    CallTimeout {
        server: String,
        tool: String,
        after: Duration,
    },
    /// The tool ran and reported an error (`isError` in its result).
    #[error("MCP server {server:?}, tool {tool:?} failed: {message}")]
    ToolError {
        server: String,
        tool: String,
        message: String,
    },
    /// The server went away during the call (crashed, killed, closed its pipes).
    #[error("MCP server {server:?} ended during a call of {tool:?}: {message}")]
    Crashed {
        server: String,
        tool: String,
        message: String,
    },
    /// The server refused the request (a JSON-RPC error: bad arguments, say) or answered
    /// something that is not a tool result.
    #[error("MCP server {server:?} refused the call of {tool:?}: {message}")]
    Protocol {
        server: String,
        tool: String,
        message: String,
    },
    /// A server this node cannot run (an `http` server: not yet supported; an empty command).
    #[error("MCP server {server:?}: {message}")]
    Unsupported { server: String, message: String },
}

impl McpError {
    /// The stable code (the step's `errorCode`).
    pub fn code(&self) -> &'static str {
        match self {
            McpError::UnknownServer { .. } => "PA730",
            McpError::Start { .. } => "PA731",
            McpError::StartTimeout { .. } => "PA732",
            McpError::UnknownTool { .. } => "PA733",
            McpError::CallTimeout { .. } => "PA734",
            McpError::ToolError { .. } => "PA735",
            McpError::Crashed { .. } => "PA736",
            McpError::Protocol { .. } => "PA737",
            McpError::Unsupported { .. } => "PA738",
        }
    }
}
