//! Steps that run other manifests as sub-tasks `<task>.<step>`: `delegate`, and `verify`
//! (a scenario, with its stubs, then its expectations checked).

use std::collections::BTreeMap;

use super::{Applied, StepError, StepJob, WorkFile, POLL};
use crate::proto::{self, command::Op};
use crate::sm::read_state;
use crate::work::propose::propose_until_answered;
use crate::work::scenario::Scenario;
use crate::work::{TaskState, WorkTask};

impl StepJob {
    /// Hands the work to another manifest as a sub-task and waits for its outputs.
    pub(super) async fn delegate(
        &self,
        inputs: BTreeMap<String, serde_json::Value>,
        attempt: u32,
    ) -> Result<serde_json::Value, StepError> {
        let work = self.work_file()?;
        let core = self.step.core.clone().unwrap_or_default();
        let name = match &self.step.manifest {
            Some(n) => n.clone(),
            None => only_manifest_of(work, &core)?,
        };
        let inputs = serde_json::to_vec(&inputs).unwrap_or_default();
        let t = self
            .run_sub_task(work, &name, inputs, Vec::new(), attempt)
            .await?;
        match t.state {
            TaskState::Succeeded => {
                Ok(serde_json::from_slice(&t.outputs_json).unwrap_or(serde_json::Value::Null))
            }
            _ => Err(StepError::new(
                "PA725",
                format!("sub-task {:?} {}: {}", t.id, t.state.label(), t.reason),
            )),
        }
    }

    /// Runs the step's scenario (`params.scenario`, a key of work.json's `scenarios`): its
    /// manifest as the sub-task `<task>.<step>`, with its inputs and stubs, then checks what it
    /// expects. The verdict is the output; a check that fails fails the step (PA729), with the
    /// verdict kept as the failed step's output.
    pub(super) async fn verify(&self, attempt: u32) -> Result<serde_json::Value, StepError> {
        let work = self.work_file()?;
        let key = self
            .step
            .params
            .get("scenario")
            .and_then(|s| s.as_str())
            .unwrap_or("");
        let scenario: &Scenario = work.scenarios.get(key).ok_or_else(|| {
            StepError::new(
                "PA726",
                format!("no scenario {key:?} in the work file (compile the spec again)"),
            )
        })?;
        let inputs = serde_json::to_vec(&scenario.inputs).unwrap_or_default();
        let stubs = serde_json::to_vec(&scenario.stubs).unwrap_or_default();
        let t = self
            .run_sub_task(work, &scenario.manifest, inputs, stubs, attempt)
            .await?;
        let verdict = crate::work::scenario::verdict(scenario, &t);
        if verdict["passed"] == serde_json::Value::Bool(true) {
            return Ok(verdict);
        }
        let failed: Vec<String> = verdict["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["passed"] != serde_json::Value::Bool(true))
            .map(|c| {
                format!(
                    "{} (got {})",
                    c["check"].as_str().unwrap_or(""),
                    c["actual"]
                )
            })
            .collect();
        Err(StepError {
            code: "PA729",
            message: format!("scenario {:?}: {}", scenario.name, failed.join("; ")),
            retryable: false,
            output: Some(verdict),
        })
    }

    pub(super) fn work_file(&self) -> Result<&WorkFile, StepError> {
        self.ctx
            .work
            .as_ref()
            .map_err(|e| StepError::new("PA726", format!("the work file is unreadable: {e}")))
    }

    /// Submits manifest `name` as the sub-task `<task>.<step>` (so a retry or a new owner finds
    /// the same one) and waits until it ends.
    pub(super) async fn run_sub_task(
        &self,
        work: &WorkFile,
        name: &str,
        inputs_json: Vec<u8>,
        stubs_json: Vec<u8>,
        attempt: u32,
    ) -> Result<WorkTask, StepError> {
        let m = work.manifests.get(name).ok_or_else(|| {
            StepError::new("PA726", format!("no manifest {name:?} in the work file"))
        })?;
        let res = work.cores.get(&m.core).cloned().unwrap_or_default();
        let child = format!("{}.{}", self.task.id, self.step.id);
        let submit = proto::SubmitTask {
            id: child.clone(),
            manifest: name.to_string(),
            core: m.core.clone(),
            manifest_json: serde_json::to_vec(m).unwrap_or_default(),
            inputs_json,
            resources: Some(proto::Resources {
                cpu_millis: res.cpu_millis,
                memory_bytes: res.memory_bytes,
                gpu_memory_bytes: res.gpu_memory_bytes,
            }),
            parent: self.task.id.clone(),
            parent_step: self.step.id.clone(),
            stubs_json,
            traceparent: self.task.trace.child_of_step(&self.step.id, attempt),
        };
        let r = propose_until_answered(&self.ctx.shared, Op::SubmitTask(submit), &self.stop)
            .await
            .ok_or_else(|| StepError::new("PA725", "the sub-task was not submitted"))?;
        if !r.applied {
            return Err(StepError::new(
                "PA725",
                format!("sub-task {child:?} refused: {}", r.message),
            ));
        }
        let mut applied = Applied::new(&self.ctx.shared.raft);
        loop {
            let done = {
                let st = read_state(&self.ctx.shared.state);
                st.work
                    .tasks
                    .get(&child)
                    .filter(|t| t.state.is_final())
                    .cloned()
            };
            if let Some(t) = done {
                return Ok(t);
            }
            applied.next(POLL).await;
        }
    }
}

pub(super) fn only_manifest_of(work: &WorkFile, core: &str) -> Result<String, StepError> {
    let names: Vec<&String> = work
        .manifests
        .iter()
        .filter(|(_, m)| m.core == core)
        .map(|(n, _)| n)
        .collect();
    match names.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(StepError::new(
            "PA726",
            format!("core {core:?} runs no manifest to delegate to"),
        )),
        many => Err(StepError::new(
            "PA726",
            format!("core {core:?} runs several manifests {many:?}: name one with `manifest:`"),
        )),
    }
}
