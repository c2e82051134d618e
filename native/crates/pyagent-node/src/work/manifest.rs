//! A logic manifest as the compiler renders it into `work.json` (`pyagent.dev/work/v1alpha1`,
//! pyagent_compile/contracts/work.py), its DAG and the check of a task's inputs against it.
//!
//! The state machine checks every submitted manifest again (a client may be another program
//! than the CLI); what it accepts, every node can run in DAG order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The value types of the spec (`ValueType` in pyagent_compile/model/spec.py).
pub const VALUE_TYPES: &[&str] = &[
    "string", "int", "bool", "json", "diff", "trace", "report", "verdict", "file",
];

/// Step kinds this node runs; the others are refused at run time with PA721.
pub const RUNNABLE_KINDS: &[&str] = &[
    "sandbox",
    "delegate",
    "analyze-trace",
    "mcp",
    "cort",
    "verify",
];
pub const KNOWN_KINDS: &[&str] = &[
    "sandbox",
    "delegate",
    "mcp",
    "cort",
    "verify",
    "analyze-trace",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Output {
    #[serde(rename = "type")]
    pub ty: String,
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    pub id: String,
    pub kind: String,
    pub after: Vec<String>,
    /// Input name → `inputs.<name>` or `steps.<id>`.
    pub inputs: BTreeMap<String, String>,
    pub timeout_ms: u64,
    pub retries: u32,
    /// sandbox: the command (argv).
    pub command: Option<Vec<String>>,
    /// sandbox: whether the firewall lets the step reach the network.
    pub network: bool,
    /// sandbox: the image whose root file system the command runs in (the node's own
    /// read-only system dirs when none). Absent in manifests submitted before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// delegate: the core and manifest to hand the work to.
    pub core: Option<String>,
    pub manifest: Option<String>,
    /// The kind's other settings (cort rounds, mcp tool and arguments, verify scenario).
    pub params: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub core: String,
    pub inputs: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, Output>,
    pub steps: Vec<Step>,
}

/// A binding's source: a manifest input or another step's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source<'a> {
    Input(&'a str),
    Step(&'a str),
}

pub fn source(binding: &str) -> Option<Source<'_>> {
    if let Some(name) = binding.strip_prefix("inputs.") {
        return Some(Source::Input(name));
    }
    binding.strip_prefix("steps.").map(Source::Step)
}

impl Step {
    /// Steps that must succeed before this one runs: `after` and the steps its inputs read.
    pub fn dependencies(&self) -> BTreeSet<&str> {
        let mut deps: BTreeSet<&str> = self.after.iter().map(String::as_str).collect();
        for binding in self.inputs.values() {
            if let Some(Source::Step(id)) = source(binding) {
                deps.insert(id);
            }
        }
        deps
    }
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let m: Manifest = serde_path_to_error::deserialize(de)
            .map_err(|e| format!("manifest: {}: {}", e.path(), e.inner()))?;
        m.check()?;
        Ok(m)
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Step ids unique, dependencies known, no cycle, kinds and bindings known.
    pub fn check(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err(format!("manifest {:?} has no steps", self.name));
        }
        let mut ids = BTreeSet::new();
        for s in &self.steps {
            if !ids.insert(s.id.as_str()) {
                return Err(format!("step {:?} appears twice", s.id));
            }
            if !KNOWN_KINDS.contains(&s.kind.as_str()) {
                return Err(format!("step {:?}: unknown kind {:?}", s.id, s.kind));
            }
        }
        for s in &self.steps {
            for d in s.dependencies() {
                if !ids.contains(d) {
                    return Err(format!("step {:?} depends on unknown step {d:?}", s.id));
                }
            }
            for binding in s.inputs.values() {
                match source(binding) {
                    Some(Source::Input(n)) if self.inputs.contains_key(n) => {}
                    Some(Source::Step(_)) => {}
                    _ => return Err(format!("step {:?}: unknown binding {binding:?}", s.id)),
                }
            }
        }
        for (name, out) in &self.outputs {
            match source(&out.from) {
                Some(Source::Step(id)) if ids.contains(id) => {}
                _ => return Err(format!("output {name:?}: unknown source {:?}", out.from)),
            }
        }
        self.order().map(|_| ())
    }

    /// The steps in an order where each comes after its dependencies (Kahn, ties by position),
    /// or the cycle's error.
    pub fn order(&self) -> Result<Vec<&Step>, String> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::with_capacity(self.steps.len());
        while order.len() < self.steps.len() {
            let next = self
                .steps
                .iter()
                .find(|s| !done.contains(s.id.as_str()) && s.dependencies().is_subset(&done));
            let Some(step) = next else {
                return Err("the steps' dependencies form a cycle".into());
            };
            done.insert(step.id.as_str());
            order.push(step);
        }
        Ok(order)
    }

    /// Checks a task's inputs (a JSON object) against the declared types: every declared input
    /// given, no other, each of its type. Returns the first problem, naming the input.
    pub fn check_inputs(&self, inputs: &serde_json::Value) -> Result<(), String> {
        let Some(given) = inputs.as_object() else {
            return Err("inputs must be a JSON object".into());
        };
        for name in given.keys() {
            if !self.inputs.contains_key(name) {
                let known: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
                return Err(format!(
                    "unknown input {name:?}; manifest {:?} declares {known:?}",
                    self.name
                ));
            }
        }
        for (name, ty) in &self.inputs {
            let Some(value) = given.get(name) else {
                return Err(format!("missing input {name:?} ({ty})"));
            };
            if !value_has_type(value, ty) {
                return Err(format!("input {name:?} must be a {ty}, got {value}"));
            }
        }
        Ok(())
    }
}

/// Whether a JSON value is of a spec value type. Text types (diff, file, report, trace as text)
/// are strings; `json` and `verdict` take any JSON value.
pub fn value_has_type(value: &serde_json::Value, ty: &str) -> bool {
    match ty {
        "int" => value.is_i64() || value.is_u64(),
        "bool" => value.is_boolean(),
        "json" | "verdict" | "trace" | "report" => true,
        _ => value.is_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn step(id: &str, kind: &str, after: &[&str], inputs: &[(&str, &str)]) -> Step {
        Step {
            id: id.into(),
            kind: kind.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timeout_ms: 60_000,
            retries: 0,
            command: Some(vec!["true".into()]),
            network: false,
            image: None,
            core: None,
            manifest: None,
            params: serde_json::Value::Null,
        }
    }

    pub(crate) fn manifest(steps: Vec<Step>) -> Manifest {
        Manifest {
            name: "m".into(),
            core: "coder".into(),
            inputs: [("command".to_string(), "string".to_string())].into(),
            outputs: BTreeMap::new(),
            steps,
        }
    }

    #[test]
    fn order_follows_dependencies_and_refuses_cycles() {
        let m = manifest(vec![
            step("c", "sandbox", &["b"], &[]),
            step("a", "sandbox", &[], &[("command", "inputs.command")]),
            step("b", "sandbox", &[], &[("t", "steps.a")]),
        ]);
        m.check().unwrap();
        let ids: Vec<&str> = m.order().unwrap().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let cyclic = manifest(vec![
            step("a", "sandbox", &["b"], &[]),
            step("b", "sandbox", &["a"], &[]),
        ]);
        assert!(cyclic.check().unwrap_err().contains("cycle"));
        let unknown = manifest(vec![step("a", "sandbox", &["zz"], &[])]);
        assert!(unknown.check().unwrap_err().contains("unknown step"));
    }

    #[test]
    fn inputs_are_checked_against_their_types() {
        let m = manifest(vec![step("a", "sandbox", &[], &[])]);
        m.check_inputs(&serde_json::json!({"command": "ls"}))
            .unwrap();
        let e = m
            .check_inputs(&serde_json::json!({"command": 3}))
            .unwrap_err();
        assert!(e.contains("must be a string"), "{e}");
        let e = m.check_inputs(&serde_json::json!({})).unwrap_err();
        assert!(e.contains("missing input"), "{e}");
        let e = m
            .check_inputs(&serde_json::json!({"command": "ls", "x": 1}))
            .unwrap_err();
        assert!(e.contains("unknown input"), "{e}");
    }
}
