//! Scenarios (docs/scenarios.md): a "digital twin" of a task, as the compiler puts it into
//! `work.json` (`scenarios`, keyed by the path a `verify` step names), the stubs its task
//! replays, and the verdict on what the task did.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{StepState, TaskState, WorkTask};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub manifest: String,
    pub inputs: serde_json::Map<String, Value>,
    pub stubs: Stubs,
    pub expect: Expect,
}

/// What a scenario's task replays instead of calling: tool results, per `tool:` as an `mcp`
/// step writes it, in order; model answers, one per request, in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stubs {
    #[serde(default)]
    pub tools: Vec<ToolStub>,
    #[serde(default)]
    pub model: ModelStub,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolStub {
    pub tool: String,
    pub result: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelStub {
    #[serde(default)]
    pub answers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    pub state: String,
    pub error_code: Option<String>,
    #[serde(default)]
    pub steps: BTreeMap<String, String>,
    #[serde(default)]
    pub outputs: Vec<OutputCheck>,
}

/// One assertion on an output: at `path` (a JSON Pointer; empty: the whole output) the value
/// equals, contains (a string), or exists. (A check for a JSON `null` cannot be written: null
/// means "not this kind of check".)
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputCheck {
    pub output: String,
    pub path: Option<String>,
    pub equals: Option<Value>,
    pub contains: Option<String>,
    pub exists: Option<bool>,
}

/// A scenario task's stubs, consumed as its steps run (per runner: a task placed again starts
/// over, as its steps run again).
pub struct TaskStubs {
    tools: Mutex<BTreeMap<String, VecDeque<Value>>>,
    pub model_answers: Vec<String>,
    /// The answers being replayed, shared by the task's `cort` steps (made at the first).
    pub model: std::sync::OnceLock<pyagent_model::Replay>,
}

impl TaskStubs {
    /// `None` for a task without stubs (every task but a scenario's).
    pub fn of(task: &WorkTask) -> Result<Option<TaskStubs>, String> {
        if task.stubs_json.is_empty() {
            return Ok(None);
        }
        let stubs: Stubs = serde_json::from_slice(&task.stubs_json)
            .map_err(|e| format!("the task's stubs are not valid: {e}"))?;
        let mut tools: BTreeMap<String, VecDeque<Value>> = BTreeMap::new();
        for t in stubs.tools {
            tools.entry(t.tool).or_default().push_back(t.result);
        }
        Ok(Some(TaskStubs {
            tools: Mutex::new(tools),
            model_answers: stubs.model.answers,
            model: std::sync::OnceLock::new(),
        }))
    }

    /// The next recorded result of `tool`, if the scenario gave one.
    pub fn tool_result(&self, tool: &str) -> Option<Value> {
        self.tools.lock().ok()?.get_mut(tool)?.pop_front()
    }
}

/// The verdict on a scenario's finished task: every expectation checked, each with what was
/// expected and what happened.
pub fn verdict(scenario: &Scenario, task: &WorkTask) -> Value {
    let mut checks = Vec::new();
    let mut check = |what: String, passed: bool, expected: Value, actual: Value| {
        checks
            .push(json!({"check": what, "passed": passed, "expected": expected, "actual": actual}));
    };
    let e = &scenario.expect;
    let state = task.state.label();
    check(
        format!("the task ends {}", e.state),
        state == e.state,
        json!(e.state),
        json!(state),
    );
    if let Some(code) = &e.error_code {
        check(
            format!("its error code is {code}"),
            &task.error_code == code,
            json!(code),
            json!(task.error_code),
        );
    }
    for (id, want) in &e.steps {
        let got = task.step(id).map(|s| s.state.label());
        check(
            format!("step {id} ends {want}"),
            got == Some(want.as_str()),
            json!(want),
            json!(got),
        );
    }
    let outputs = outputs_of(task);
    for c in &e.outputs {
        let (what, passed, expected, actual) = output_check(c, &outputs);
        check(what, passed, expected, actual);
    }
    let passed = checks.iter().all(|c| c["passed"] == json!(true));
    json!({
        "scenario": scenario.name,
        "passed": passed,
        "task": task.id,
        "state": state,
        "checks": checks,
    })
}

/// The task's outputs: its outputs when it succeeded; otherwise what its steps produced, by
/// the manifest's output names (so a failed task's partial results can be checked too).
fn outputs_of(task: &WorkTask) -> serde_json::Map<String, Value> {
    if task.state == TaskState::Succeeded {
        if let Ok(Value::Object(m)) = serde_json::from_slice(&task.outputs_json) {
            return m;
        }
    }
    let Ok(manifest) = super::manifest::Manifest::parse(&task.manifest_json) else {
        return serde_json::Map::new();
    };
    manifest
        .outputs
        .iter()
        .filter_map(|(name, out)| {
            let sid = out.from.strip_prefix("steps.")?;
            let step = task.step(sid).filter(|s| s.state == StepState::Succeeded)?;
            let value = serde_json::from_slice(&step.output_json).ok()?;
            Some((name.clone(), value))
        })
        .collect()
}

fn output_check(
    c: &OutputCheck,
    outputs: &serde_json::Map<String, Value>,
) -> (String, bool, Value, Value) {
    let path = c.path.as_deref().unwrap_or("");
    let at = outputs.get(&c.output).and_then(|v| v.pointer(path));
    let place = if path.is_empty() {
        format!("output {}", c.output)
    } else {
        format!("output {} at {path}", c.output)
    };
    let actual = at.cloned().unwrap_or(Value::Null);
    if let Some(want) = &c.equals {
        return (
            format!("{place} equals {want}"),
            at == Some(want),
            want.clone(),
            actual,
        );
    }
    if let Some(part) = &c.contains {
        let passed = at
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains(part.as_str()));
        return (
            format!("{place} contains {part:?}"),
            passed,
            json!(part),
            actual,
        );
    }
    let want = c.exists.unwrap_or(true);
    (
        format!("{place} {}", if want { "exists" } else { "does not exist" }),
        at.is_some() == want,
        json!(want),
        actual,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::manifest::tests::{manifest, step};
    use crate::work::{Resources, StepRecord};

    fn finished(state: TaskState, outputs: Value) -> WorkTask {
        let mut m = manifest(vec![step("s", "sandbox", &[], &[])]);
        m.outputs.insert(
            "out".into(),
            crate::work::manifest::Output {
                ty: "json".into(),
                from: "steps.s".into(),
            },
        );
        WorkTask {
            id: "t.v".into(),
            manifest: m.name.clone(),
            core: m.core.clone(),
            manifest_json: serde_json::to_vec(&m).unwrap(),
            inputs_json: b"{}".to_vec(),
            resources: Resources::default(),
            parent: "t".into(),
            parent_step: "v".into(),
            state,
            reason: String::new(),
            error_code: String::new(),
            owner: 1,
            token: (1, 1),
            placements: 1,
            steps: vec![StepRecord {
                id: "s".into(),
                kind: "sandbox".into(),
                state: StepState::Succeeded,
                attempt: 1,
                output_json: serde_json::to_vec(&outputs["out"]).unwrap(),
                error_code: String::new(),
                error: String::new(),
                started_ms: 0,
                finished_ms: 0,
            }],
            outputs_json: serde_json::to_vec(&outputs).unwrap(),
            submitted_ms: 0,
            finished_ms: 0,
            submitted_index: 1,
            revision: 1,
            stubs_json: Vec::new(),
            trace: Default::default(),
        }
    }

    fn scenario(outputs: Value) -> Scenario {
        serde_json::from_value(json!({
            "name": "s", "manifest": "m", "inputs": {},
            "stubs": {"tools": [], "model": {"answers": []}},
            "expect": {"state": "succeeded", "errorCode": null, "steps": {"s": "succeeded"}, "outputs": outputs},
        }))
        .unwrap()
    }

    #[test]
    fn every_expectation_is_checked_and_reported() {
        let task = finished(
            TaskState::Succeeded,
            json!({"out": {"exitCode": 1, "stderr": "AssertionError: 2 != 3"}}),
        );
        let ok = scenario(json!([
            {"output": "out", "path": "/exitCode", "equals": 1, "contains": null, "exists": null},
            {"output": "out", "path": "/stderr", "equals": null, "contains": "AssertionError", "exists": null},
            {"output": "out", "path": "/missing", "equals": null, "contains": null, "exists": false},
        ]));
        let v = verdict(&ok, &task);
        assert_eq!(v["passed"], json!(true), "{v}");
        assert_eq!(v["checks"].as_array().unwrap().len(), 5);

        let bad = scenario(json!([
            {"output": "out", "path": "/exitCode", "equals": 0, "contains": null, "exists": null},
        ]));
        let v = verdict(&bad, &task);
        assert_eq!(v["passed"], json!(false));
        let failed: Vec<&Value> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["passed"] == json!(false))
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (&failed[0]["expected"], &failed[0]["actual"]),
            (&json!(0), &json!(1))
        );
        // A failed task: its steps' outputs are still checked.
        let v = verdict(
            &ok,
            &finished(
                TaskState::Failed,
                json!({"out": {"exitCode": 1, "stderr": "AssertionError"}}),
            ),
        );
        assert_eq!(v["state"], json!("failed"));
        assert_eq!(v["checks"][1]["passed"], json!(true), "{v}");
    }

    #[test]
    fn stubs_are_replayed_in_order_per_tool() {
        let mut task = finished(TaskState::Running, json!({"out": 1}));
        task.stubs_json = serde_json::to_vec(&json!({
            "tools": [{"tool": "git.git_status", "result": 1}, {"tool": "git.git_status", "result": 2}],
            "model": {"answers": ["a"]},
        }))
        .unwrap();
        let stubs = TaskStubs::of(&task).unwrap().unwrap();
        assert_eq!(stubs.tool_result("git.git_status"), Some(json!(1)));
        assert_eq!(stubs.tool_result("git.git_status"), Some(json!(2)));
        assert_eq!(stubs.tool_result("git.git_status"), None);
        assert_eq!(stubs.tool_result("time"), None);
        assert_eq!(stubs.model_answers, vec!["a".to_string()]);
    }
}
