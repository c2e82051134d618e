//! OpenTelemetry traces of tasks, exported over OTLP/gRPC to the endpoint the spec names
//! (`observability.traces.endpoint`).
//!
//! Every task is one span, every attempt of a step a child of it, a model or MCP call a child
//! of its step, and a delegated sub-task's span a child of the `delegate` step that waits for
//! it. The trace context lives in the task record ([`TaskTrace`]), replicated by Raft, so the
//! node that runs a sub-task, or takes over a task whose owner was lost, continues the same
//! trace. A step's span id is derived from the task's span id, the step and the attempt: a model
//! call can name its parent before the step's span is exported, and the sub-task of a retried
//! `delegate` keeps pointing at the attempt that submitted it.
//!
//! Spans are built as the SDK's [`SpanData`] with the times the node measured (steps, calls) or
//! committed (a task's submission and end, from the record) and handed to the SDK's
//! [`BatchSpanProcessor`] and OTLP exporter. The owner that saw a task end exports its span, so
//! each task span is exported once by the node that ran it last. Not exported: tasks that end
//! without ever being placed (cancelled while queued), which have no owner.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};

/// How long one export may take before the SDK gives up on that batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long spans wait to be batched; a task's spans reach the collector within about this.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// Spans held while the collector is slow or away; beyond it new spans are dropped (counted by
/// the SDK), never the node's work.
const QUEUE_SPANS: usize = 8192;

/// A task's place in its trace, as committed with the task (W3C Trace Context ids, lowercase
/// hex). Empty strings in a record saved before traces existed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTrace {
    pub trace_id: String,
    pub span_id: String,
    /// The span this task's span is a child of: the submitter's, or the `delegate` step's for a
    /// sub-task; empty for a task that starts its trace.
    pub parent_span_id: String,
}

impl TaskTrace {
    /// The trace of a task submitted at log index `index` with the submitter's `traceparent`
    /// (empty: none). Deterministic, as every replica applies it: the trace id is the
    /// submitter's or derived from the swarm, task and index; the span id is always derived.
    pub fn for_submission(
        swarm: &str,
        task: &str,
        index: u64,
        traceparent: &str,
    ) -> Result<TaskTrace, String> {
        let derived = derive(&[swarm.as_bytes(), task.as_bytes(), &index.to_le_bytes()]);
        let span_id = SpanId::from_bytes(first::<8>(&derived[16..]));
        let (trace_id, parent) = if traceparent.is_empty() {
            (TraceId::from_bytes(first::<16>(&derived)), None)
        } else {
            let (t, p) = parse_traceparent(traceparent)?;
            (t, Some(p))
        };
        Ok(TaskTrace {
            trace_id: trace_id.to_string(),
            span_id: span_id.to_string(),
            parent_span_id: parent.map(|p| p.to_string()).unwrap_or_default(),
        })
    }

    fn ids(&self) -> Option<(TraceId, SpanId, SpanId)> {
        let trace = TraceId::from_hex(&self.trace_id).ok()?;
        let span = SpanId::from_hex(&self.span_id).ok()?;
        let parent = SpanId::from_hex(&self.parent_span_id).unwrap_or(SpanId::INVALID);
        (trace != TraceId::INVALID && span != SpanId::INVALID).then_some((trace, span, parent))
    }

    /// The task's own span as a W3C `traceparent`; empty for a record without trace ids.
    pub fn traceparent(&self) -> String {
        match self.ids() {
            Some((trace, span, _)) => format!("00-{trace}-{span}-01"),
            None => String::new(),
        }
    }

    /// The `traceparent` that makes a span a child of attempt `attempt` of step `step`.
    pub fn child_of_step(&self, step: &str, attempt: u32) -> String {
        match self.ids() {
            Some((trace, span, _)) => {
                format!("00-{trace}-{}-01", step_span_id(span, step, attempt))
            }
            None => String::new(),
        }
    }
}

/// Parses a W3C `traceparent` (version 00): its trace id and parent span id.
pub fn parse_traceparent(value: &str) -> Result<(TraceId, SpanId), String> {
    let bad =
        || format!("traceparent {value:?} is not 00-<32 hex>-<16 hex>-<2 hex> with non-zero ids");
    let parts: Vec<&str> = value.split('-').collect();
    let [version, trace, span, flags] = parts.as_slice() else {
        return Err(bad());
    };
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if *version != "00" || !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
        return Err(bad());
    }
    let trace = TraceId::from_hex(trace).map_err(|_| bad())?;
    let span = SpanId::from_hex(span).map_err(|_| bad())?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return Err(bad());
    }
    Ok((trace, span))
}

fn derive(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("pyagent task trace ids v1");
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    *h.finalize().as_bytes()
}

fn first<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// The span id of attempt `attempt` of step `step` of the task whose span is `task_span`.
pub fn step_span_id(task_span: SpanId, step: &str, attempt: u32) -> SpanId {
    let d = derive(&[
        &task_span.to_bytes(),
        step.as_bytes(),
        &attempt.to_le_bytes(),
    ]);
    SpanId::from_bytes(first::<8>(&d))
}

fn random_span_id() -> SpanId {
    let mut b = [0u8; 8];
    while b == [0u8; 8] {
        getrandom::fill(&mut b).expect("the OS random source");
    }
    SpanId::from_bytes(b)
}

pub fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Where a span hangs in its trace.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub trace: TraceId,
    pub span: SpanId,
    pub parent: SpanId,
}

impl Place {
    /// The task's own span.
    pub fn of_task(t: &TaskTrace) -> Option<Place> {
        let (trace, span, parent) = t.ids()?;
        Some(Place {
            trace,
            span,
            parent,
        })
    }

    /// Attempt `attempt` of step `step`, a child of the task's span.
    pub fn of_step(t: &TaskTrace, step: &str, attempt: u32) -> Option<Place> {
        let task = Place::of_task(t)?;
        Some(Place {
            trace: task.trace,
            span: step_span_id(task.span, step, attempt),
            parent: task.span,
        })
    }

    /// A new span under this one (a call a step makes).
    pub fn child(&self) -> Place {
        Place {
            trace: self.trace,
            span: random_span_id(),
            parent: self.span,
        }
    }
}

/// One span to export: what it is, when, and how it ended.
pub struct Span {
    pub place: Place,
    pub name: String,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// None: it succeeded; Some(description): it failed.
    pub error: Option<String>,
}

/// The exporter of one node; inert when the spec names no endpoint.
pub struct Telemetry {
    processor: Option<BatchSpanProcessor>,
    scope: InstrumentationScope,
}

/// Who is exporting: the resource every span carries.
pub struct Origin<'a> {
    pub swarm: &'a str,
    pub pool: &'a str,
    pub node_name: &'a str,
    pub node_id: u64,
}

impl Telemetry {
    pub fn disabled() -> Telemetry {
        Telemetry {
            processor: None,
            scope: scope(),
        }
    }

    /// Starts exporting to `endpoint` (`http://host:port`, OTLP/gRPC). Must run inside the
    /// node's Tokio runtime: the exporter's gRPC channel lives on it (connected lazily, so a
    /// collector that is not up yet costs nothing but the spans sent before it is).
    pub fn start(endpoint: &str, origin: &Origin<'_>) -> Result<Telemetry, String> {
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
        let config = BatchConfigBuilder::default()
            .with_scheduled_delay(BATCH_DELAY)
            .with_max_queue_size(QUEUE_SPANS)
            .build();
        let mut processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config)
            .build();
        processor.set_resource(&resource(origin));
        Ok(Telemetry {
            processor: Some(processor),
            scope: scope(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.processor.is_some()
    }

    pub fn export(&self, span: Span) {
        let Some(processor) = &self.processor else {
            return;
        };
        let parent_is_remote = span.place.parent != SpanId::INVALID;
        processor.on_end(SpanData {
            span_context: SpanContext::new(
                span.place.trace,
                span.place.span,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: span.place.parent,
            // Every parent may be another node's span: what it knows for certain.
            parent_span_is_remote: parent_is_remote,
            span_kind: span.kind,
            name: Cow::Owned(span.name),
            start_time: span.start,
            end_time: span.end.max(span.start),
            attributes: span.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match span.error {
                None => Status::Ok,
                Some(description) => Status::Error {
                    description: description.into(),
                },
            },
            instrumentation_scope: self.scope.clone(),
        });
    }

    /// Sends what is queued (on stop). Blocks: call it from a blocking thread.
    pub fn shutdown(&self) {
        if let Some(p) = &self.processor {
            if let Err(e) = p.shutdown_with_timeout(EXPORT_TIMEOUT) {
                tracing::warn!(error = %e, "traces not all exported at stop");
            }
        }
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("pyagent-node")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn resource(o: &Origin<'_>) -> Resource {
    Resource::builder_empty()
        .with_service_name("pyagent-node")
        .with_attributes([
            KeyValue::new("service.namespace", o.swarm.to_string()),
            KeyValue::new("service.instance.id", o.node_name.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("pyagent.pool", o.pool.to_string()),
            KeyValue::new("pyagent.node.id", o.node_id as i64),
        ])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submission_without_traceparent_starts_a_trace_of_its_own() {
        let a = TaskTrace::for_submission("s", "t1", 7, "").unwrap();
        let b = TaskTrace::for_submission("s", "t1", 8, "").unwrap();
        assert_eq!(a.trace_id.len(), 32);
        assert_eq!(a.span_id.len(), 16);
        assert!(a.parent_span_id.is_empty());
        assert_ne!(
            a.trace_id, b.trace_id,
            "the same id submitted again is another trace"
        );
        assert_eq!(a, TaskTrace::for_submission("s", "t1", 7, "").unwrap());
        let (trace, span) = parse_traceparent(&a.traceparent()).unwrap();
        assert_eq!(
            (trace.to_string(), span.to_string()),
            (a.trace_id, a.span_id)
        );
        assert_eq!(TaskTrace::default().traceparent(), "");
    }

    #[test]
    fn a_traceparent_makes_the_task_a_child_of_the_submitters_span() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TaskTrace::for_submission("s", "t1", 7, tp).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_span_id, "00f067aa0ba902b7");
        assert_ne!(t.span_id, "00f067aa0ba902b7");
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "x",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_sub_task_hangs_under_the_attempt_that_delegated_it() {
        let parent = TaskTrace::for_submission("s", "t1", 7, "").unwrap();
        let tp = parent.child_of_step("outline", 2);
        let child = TaskTrace::for_submission("s", "t1.outline", 9, &tp).unwrap();
        assert_eq!(child.trace_id, parent.trace_id);
        let step = Place::of_step(&parent, "outline", 2).unwrap();
        assert_eq!(child.parent_span_id, step.span.to_string());
        assert_ne!(
            step.span,
            Place::of_step(&parent, "outline", 1).unwrap().span
        );
    }
}
