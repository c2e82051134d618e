//! The spans of this node's work (telemetry.rs): each step attempt as it ends, each model and
//! MCP call inside it, and a task's own span (with its time in the queue) when it ends here.
//! Names and attributes follow OpenTelemetry's semantic conventions where they have one
//! (`gen_ai.*` for model calls, `mcp.*` for tool calls).

use std::time::SystemTime;

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use super::StepError;
use crate::telemetry::{at_ms, Place, Span, Telemetry};
use crate::work::manifest::Step;
use crate::work::{TaskState, WorkTask};

fn task_attributes(t: &WorkTask) -> Vec<KeyValue> {
    vec![
        KeyValue::new("pyagent.task.id", t.id.clone()),
        KeyValue::new("pyagent.task.manifest", t.manifest.clone()),
        KeyValue::new("pyagent.task.core", t.core.clone()),
    ]
}

/// One attempt of a step, from when this node began it to its outcome.
pub(super) struct Attempt<'a> {
    pub task: &'a WorkTask,
    pub step: &'a Step,
    pub number: u32,
    pub started: SystemTime,
}

impl Attempt<'_> {
    /// Where the calls this attempt makes hang: under its span.
    pub fn place(&self) -> Option<Place> {
        Place::of_step(&self.task.trace, &self.step.id, self.number)
    }

    pub fn export(&self, telemetry: &Telemetry, outcome: &str, error: Option<&StepError>) {
        let Some(place) = self.place().filter(|_| telemetry.enabled()) else {
            return;
        };
        let mut attributes = task_attributes(self.task);
        attributes.extend([
            KeyValue::new("pyagent.step.id", self.step.id.clone()),
            KeyValue::new("pyagent.step.kind", self.step.kind.clone()),
            KeyValue::new("pyagent.step.attempt", i64::from(self.number)),
            KeyValue::new("pyagent.step.outcome", outcome.to_string()),
        ]);
        if let Some(e) = error {
            attributes.push(KeyValue::new("error.type", e.code));
        }
        telemetry.export(Span {
            place,
            name: format!("step {}", self.step.id),
            kind: SpanKind::Internal,
            start: self.started,
            end: SystemTime::now(),
            attributes,
            error: error.map(|e| format!("{}: {}", e.code, e.message)),
        });
    }
}

/// A task that ended while this node owned it: its span, from submission to end, and the
/// part of it spent waiting to be placed (until its first step began).
pub(super) fn task_ended(telemetry: &Telemetry, t: &WorkTask) {
    let Some(place) = Place::of_task(&t.trace).filter(|_| telemetry.enabled()) else {
        return;
    };
    let mut attributes = task_attributes(t);
    attributes.extend([
        KeyValue::new("pyagent.task.state", t.state.label()),
        KeyValue::new("pyagent.task.placements", t.placements as i64),
        KeyValue::new("pyagent.task.owner", t.owner as i64),
    ]);
    if !t.parent.is_empty() {
        attributes.push(KeyValue::new("pyagent.task.parent", t.parent.clone()));
    }
    if !t.error_code.is_empty() {
        attributes.push(KeyValue::new("error.type", t.error_code.clone()));
    }
    let first_step = t
        .steps
        .iter()
        .map(|s| s.started_ms)
        .filter(|&ms| ms > 0)
        .min();
    if let Some(began) = first_step {
        telemetry.export(Span {
            place: place.child(),
            name: "queued".into(),
            kind: SpanKind::Internal,
            start: at_ms(t.submitted_ms),
            end: at_ms(began),
            attributes: vec![KeyValue::new("pyagent.task.id", t.id.clone())],
            error: None,
        });
    }
    let failed = matches!(t.state, TaskState::Failed | TaskState::Cancelled);
    telemetry.export(Span {
        place,
        name: format!("task {}", t.manifest),
        kind: SpanKind::Internal,
        start: at_ms(t.submitted_ms),
        end: at_ms(t.finished_ms.max(t.submitted_ms)),
        attributes,
        error: failed.then(|| format!("{} {}: {}", t.state.label(), t.error_code, t.reason)),
    });
}

/// A call to an MCP server's tool (`tool` empty: the server's only tool).
pub(super) struct ToolCall<'a> {
    pub server: &'a str,
    pub tool: &'a str,
    pub started: SystemTime,
}

impl ToolCall<'_> {
    /// Its span, under the step that made the call.
    pub fn export(&self, telemetry: &Telemetry, parent: Option<Place>, error: Option<&StepError>) {
        let Some(parent) = parent.filter(|_| telemetry.enabled()) else {
            return;
        };
        let mut attributes = vec![
            KeyValue::new("mcp.method.name", "tools/call"),
            KeyValue::new("gen_ai.tool.name", self.tool.to_string()),
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("pyagent.mcp.server", self.server.to_string()),
        ];
        if let Some(e) = error {
            attributes.push(KeyValue::new("error.type", e.code));
        }
        telemetry.export(Span {
            place: parent.child(),
            name: format!("tools/call {}", self.tool).trim_end().to_string(),
            kind: SpanKind::Client,
            start: self.started,
            end: SystemTime::now(),
            attributes,
            error: error.map(|e| format!("{}: {}", e.code, e.message)),
        });
    }
}

/// A model behind [`pyagent_model::Chat`] whose every request is a span under the step.
pub(super) struct TracedChat<'a, C> {
    pub inner: &'a C,
    pub telemetry: &'a Telemetry,
    pub parent: Option<Place>,
}

impl<C: pyagent_model::Chat> pyagent_model::Chat for TracedChat<'_, C> {
    fn config(&self) -> &pyagent_model::ModelConfig {
        self.inner.config()
    }

    async fn chat(
        &self,
        messages: &[pyagent_model::Message],
    ) -> Result<pyagent_model::ChatReply, pyagent_model::ModelError> {
        let started = SystemTime::now();
        let reply = self.inner.chat(messages).await;
        if let Some(parent) = self.parent.filter(|_| self.telemetry.enabled()) {
            self.export(parent, started, &reply);
        }
        reply
    }
}

impl<C: pyagent_model::Chat> TracedChat<'_, C> {
    fn export(
        &self,
        parent: Place,
        started: SystemTime,
        reply: &Result<pyagent_model::ChatReply, pyagent_model::ModelError>,
    ) {
        let model = self.inner.config().name.clone();
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.request.model", model.clone()),
        ];
        match reply {
            Ok(r) => attributes.extend([
                KeyValue::new("gen_ai.usage.input_tokens", r.usage.prompt_tokens as i64),
                KeyValue::new(
                    "gen_ai.usage.output_tokens",
                    r.usage.completion_tokens as i64,
                ),
                KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    r.finish_reason.clone().unwrap_or_default(),
                ),
            ]),
            Err(e) => attributes.push(KeyValue::new("error.type", e.code())),
        }
        self.telemetry.export(Span {
            place: parent.child(),
            name: format!("chat {model}"),
            kind: SpanKind::Client,
            start: started,
            end: SystemTime::now(),
            attributes,
            error: reply.as_ref().err().map(|e| e.to_string()),
        });
    }
}
