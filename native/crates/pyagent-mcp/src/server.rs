//! A core's MCP server as `work.json` describes it, and what an `mcp` step asks of it: which
//! server, which tool, with which arguments.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::McpError;

/// How the node talks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A command the node starts, in the task's sandbox, speaking JSON-RPC on stdin and stdout.
    Stdio,
    /// A server reached over streamable HTTP (`url`, or `port` on the node).
    Http,
}

/// One entry of `work.json`'s `tools.<core>` (pyagent_compile/contracts/work.py `ToolServer`;
/// spec `cores.<core>.tools[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolServer {
    /// The name `mcp` steps call it by (the part of `tool:` before the dot).
    pub name: String,
    pub transport: Transport,
    /// stdio: the command that starts the server, looked up in the sandbox's `PATH`.
    pub command: Vec<String>,
    /// http: the server's URL.
    pub url: Option<String>,
    /// http: the port of a server run beside the node.
    pub port: Option<u16>,
}

/// An `mcp` step's `tool:` resolved against the core's servers: `<server>` or
/// `<server>.<tool>`. Server names are DNS labels (the spec checks), so the first dot splits;
/// the tool name after it may hold dots of its own.
pub fn resolve<'a, 'b>(
    servers: &'a [ToolServer],
    step_tool: &'b str,
) -> Result<(&'a ToolServer, Option<&'b str>), McpError> {
    let (name, tool) = match step_tool.split_once('.') {
        Some((name, tool)) => (name, Some(tool)),
        None => (step_tool, None),
    };
    let server =
        servers
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| McpError::UnknownServer {
                server: name.to_string(),
                known: if servers.is_empty() {
                    "it has none".to_string()
                } else {
                    servers
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })?;
    Ok((server, tool.filter(|t| !t.is_empty())))
}

/// A tool's arguments: the step's `arguments`, then its bound inputs over them (an input wins
/// over an argument of the same name, so that what flows in from earlier steps is what the
/// tool sees).
pub fn arguments(
    step_arguments: &Map<String, Value>,
    inputs: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = step_arguments.clone();
    for (k, v) in inputs {
        merged.insert(k.clone(), v.clone());
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn servers() -> Vec<ToolServer> {
        serde_json::from_value(json!([
            {"name": "git", "transport": "stdio", "command": ["mcp-server-git"], "url": null, "port": null},
            {"name": "search", "transport": "http", "command": [], "url": "https://x/mcp", "port": null},
        ]))
        .unwrap()
    }

    #[test]
    fn the_first_dot_splits_server_and_tool() {
        let s = servers();
        let (server, tool) = resolve(&s, "git.git_status").unwrap();
        assert_eq!((server.name.as_str(), tool), ("git", Some("git_status")));
        let (server, tool) = resolve(&s, "search.v1.find").unwrap();
        assert_eq!((server.name.as_str(), tool), ("search", Some("v1.find")));
        assert_eq!(resolve(&s, "git").unwrap().1, None);
        assert_eq!(resolve(&s, "git.").unwrap().1, None);
    }

    #[test]
    fn an_unknown_server_is_pa730_naming_the_known_ones() {
        let e = resolve(&servers(), "gti.git_status").unwrap_err();
        assert_eq!(e.code(), "PA730");
        assert!(e.to_string().contains("\"gti\"") && e.to_string().contains("git, search"));
        assert!(resolve(&[], "git")
            .unwrap_err()
            .to_string()
            .contains("it has none"));
    }

    #[test]
    fn inputs_win_over_arguments() {
        let args = json!({"timezone": "UTC", "keep": 1});
        let inputs = json!({"timezone": "Europe/Paris"});
        let merged = arguments(args.as_object().unwrap(), inputs.as_object().unwrap());
        assert_eq!(
            Value::Object(merged),
            json!({"timezone": "Europe/Paris", "keep": 1})
        );
    }

    #[test]
    fn the_rendered_shape_is_read_strictly() {
        let extra = json!({"name": "a", "transport": "stdio", "command": ["x"], "url": null, "port": null, "env": {}});
        assert!(serde_json::from_value::<ToolServer>(extra).is_err());
        let bad =
            json!({"name": "a", "transport": "sse", "command": [], "url": null, "port": null});
        assert!(serde_json::from_value::<ToolServer>(bad).is_err());
    }
}
