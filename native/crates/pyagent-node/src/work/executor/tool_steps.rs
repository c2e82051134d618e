//! `analyze-trace` and `mcp` steps: a trace's report, and a tool of the core's MCP servers.

use std::collections::BTreeMap;

use super::{StepError, StepJob};

impl StepJob {
    /// The report of the `trace` input (docs/analyze-trace.md). Capture files are read only
    /// from this node's own workspaces root, where its sandbox steps put them: a trace given as
    /// a task input cannot make the node read another file.
    pub(super) fn analyze_trace(
        &self,
        inputs: &BTreeMap<String, serde_json::Value>,
    ) -> Result<serde_json::Value, StepError> {
        let trace = inputs.get("trace").ok_or_else(|| {
            StepError::new(
                "PA727",
                format!("step {:?} has no `trace` input to analyse", self.step.id),
            )
        })?;
        let workspace = self.ctx.workspaces.join(&self.task.id);
        let roots = [
            pyagent_sandbox::WORKSPACE,
            workspace.to_str().unwrap_or(pyagent_sandbox::WORKSPACE),
        ];
        let trace = trace.clone();
        let report = if captures_are_ours(&trace, &self.ctx.workspaces) {
            pyagent_trace::analyze_trace_with_captures(&trace, &roots)
        } else {
            pyagent_trace::analyze_trace(&trace, &roots)
        };
        Ok(report.to_json())
    }

    /// Calls the step's tool (`params.tool`: `<server>` or `<server>.<tool>`) of its core's MCP
    /// servers with `params.arguments` and the bound inputs over them (docs/mcp.md).
    pub(super) async fn call_tool(
        &self,
        inputs: BTreeMap<String, serde_json::Value>,
        at: &super::spans::Attempt<'_>,
    ) -> Result<serde_json::Value, StepError> {
        let work =
            self.ctx.work.as_ref().map_err(|e| {
                StepError::new("PA726", format!("the work file is unreadable: {e}"))
            })?;
        let servers = work
            .tools
            .get(&self.task.core)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let step_tool = self
            .step
            .params
            .get("tool")
            .and_then(|t| t.as_str())
            .unwrap_or("");
        if let Some(stubs) = self.stubs()? {
            // A scenario's task replays the results it was given; it never starts a server.
            return stubs.tool_result(step_tool).ok_or_else(|| {
                StepError::new(
                    "PA733",
                    format!("the scenario gives no (more) result for tool {step_tool:?}"),
                )
            });
        }
        let (server, tool) = pyagent_mcp::resolve(servers, step_tool).map_err(mcp_error)?;
        let given = self
            .step
            .params
            .get("arguments")
            .and_then(|a| a.as_object())
            .cloned()
            .unwrap_or_default();
        let bound: serde_json::Map<String, serde_json::Value> = inputs.into_iter().collect();
        let sessions = self
            .mcp
            .get_or_try_init(|| async {
                crate::work::sandbox_step::mcp_sandbox(&self.ctx, &self.task, servers).map(|spec| {
                    pyagent_mcp::McpSessions::new(pyagent_mcp::SessionConfig::new(spec))
                })
            })
            .await?;
        let started = std::time::SystemTime::now();
        let result = sessions
            .call(server, tool, pyagent_mcp::arguments(&given, &bound))
            .await
            .map_err(mcp_error);
        let call = super::spans::ToolCall {
            server: &server.name,
            tool: tool.unwrap_or(""),
            started,
        };
        call.export(
            &self.ctx.shared.telemetry,
            at.place(),
            result.as_ref().err(),
        );
        result
    }
}

fn mcp_error(e: pyagent_mcp::McpError) -> StepError {
    // A crashed or hung server is killed and forgotten: a retry starts it again.
    let retryable = matches!(e.code(), "PA734" | "PA736");
    StepError {
        code: e.code(),
        message: e.to_string(),
        retryable,
        output: None,
    }
}

/// Whether every capture file the trace names is in this node's workspaces root.
fn captures_are_ours(trace: &serde_json::Value, root: &std::path::Path) -> bool {
    let Some(streams) = trace.get("streams").and_then(|s| s.as_object()) else {
        return true;
    };
    streams
        .values()
        .all(|s| match s.get("file").and_then(|f| f.as_str()) {
            None => true,
            Some(f) => {
                let path = std::path::Path::new(f);
                !path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                    && path.starts_with(root)
            }
        })
}
