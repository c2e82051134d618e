//! The client's view of a task (`TaskView`), from the replicated state.

use super::WorkTask;
use crate::proto;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn task_view(t: &WorkTask) -> proto::TaskView {
    proto::TaskView {
        found: true,
        id: t.id.clone(),
        manifest: t.manifest.clone(),
        core: t.core.clone(),
        state: t.state.label().into(),
        reason: t.reason.clone(),
        owner: t.owner,
        token: Some(proto::FencingToken {
            term: t.token.0,
            index: t.token.1,
        }),
        placements: t.placements,
        inputs_json: text(&t.inputs_json),
        outputs_json: text(&t.outputs_json),
        steps: t
            .steps
            .iter()
            .map(|s| proto::StepView {
                id: s.id.clone(),
                kind: s.kind.clone(),
                state: s.state.label().into(),
                attempt: s.attempt,
                output_json: text(&s.output_json),
                error_code: s.error_code.clone(),
                error: s.error.clone(),
                started_ms: s.started_ms,
                finished_ms: s.finished_ms,
            })
            .collect(),
        submitted_ms: t.submitted_ms,
        finished_ms: t.finished_ms,
        parent: t.parent.clone(),
        error_code: t.error_code.clone(),
        revision: t.revision,
        trace_id: t.trace.trace_id.clone(),
        span_id: t.trace.span_id.clone(),
        parent_span_id: t.trace.parent_span_id.clone(),
    }
}
