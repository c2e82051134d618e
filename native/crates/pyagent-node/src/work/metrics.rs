//! The work part of `/metrics`: the task table by state (the same on every node), what this node
//! owns, and the sandbox isolation it gets (which may be below the host's best, see
//! docs/sandbox.md).

use super::{TaskState, ISOLATION_LEVELS};
use crate::metrics::gauge;
use crate::shared::Shared;
use crate::sm::read_state;

const STATES: [TaskState; 5] = [
    TaskState::Queued,
    TaskState::Running,
    TaskState::Succeeded,
    TaskState::Failed,
    TaskState::Cancelled,
];

pub fn render(shared: &Shared, out: &mut String) {
    let (by_state, owned, workers) = {
        let st = read_state(&shared.state);
        let by_state: Vec<(String, f64)> = STATES
            .iter()
            .map(|s| {
                let n = st.work.tasks.values().filter(|t| t.state == *s).count();
                (format!("state=\"{}\"", s.label()), n as f64)
            })
            .collect();
        let owned = st
            .work
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Running && t.owner == shared.cfg.node_id)
            .count();
        (by_state, owned, st.work.workers.len())
    };
    let samples: Vec<(&str, f64)> = by_state.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    gauge(
        out,
        "pyagent_tasks",
        "Tasks in the swarm's replicated table, by state.",
        &samples,
    );
    gauge(
        out,
        "pyagent_tasks_owned",
        "Running tasks this node owns.",
        &[("", owned as f64)],
    );
    gauge(
        out,
        "pyagent_workers",
        "Nodes registered as workers in the replicated table.",
        &[("", workers as f64)],
    );
    if shared.cfg.work.is_some() {
        let level = super::sandbox_step::isolation_level();
        // Strongest first in ISOLATION_LEVELS: namespaces 2, landlock_seccomp 1, limits_only 0.
        let rank = ISOLATION_LEVELS
            .iter()
            .position(|l| *l == level)
            .map(|p| (ISOLATION_LEVELS.len() - 1 - p) as f64)
            .unwrap_or(0.0);
        let labels = format!("level=\"{level}\"");
        gauge(
            out,
            "pyagent_sandbox_isolation",
            "The sandbox isolation this node's steps get (2 namespaces, 1 landlock_seccomp, 0 limits_only).",
            &[(&labels, rank)],
        );
    }
}
