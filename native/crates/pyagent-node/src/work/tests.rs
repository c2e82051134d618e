//! The task life cycle on the state machine alone: placement, fencing, exactly-once steps.

use super::manifest::tests::{manifest, step};
use super::*;

fn at(index: u64, now: u64) -> At {
    At {
        term: 1,
        index,
        now,
    }
}

fn submission(id: &str, steps: Vec<manifest::Step>) -> proto::SubmitTask {
    let m = manifest(steps);
    proto::SubmitTask {
        id: id.into(),
        manifest: m.name.clone(),
        core: m.core.clone(),
        manifest_json: serde_json::to_vec(&m).unwrap(),
        inputs_json: br#"{"command":"true"}"#.to_vec(),
        resources: Some(proto::Resources {
            cpu_millis: 500,
            memory_bytes: 1 << 20,
            gpu_memory_bytes: 0,
        }),
        parent: String::new(),
        parent_step: String::new(),
        stubs_json: Vec::new(),
        traceparent: String::new(),
    }
}

fn register(node: u64, max_tasks: u32) -> proto::RegisterWorker {
    proto::RegisterWorker {
        node_id: node,
        pool: "agents".into(),
        cores: vec!["coder".into()],
        capacity: Some(proto::Resources {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            gpu_memory_bytes: 0,
        }),
        max_tasks,
        isolation: "namespaces".into(),
        lease_ms: 5_000,
    }
}

fn update(task: &WorkTask, step: &str, state: &str) -> proto::StepUpdate {
    proto::StepUpdate {
        task: task.id.clone(),
        token: Some(proto::FencingToken {
            term: task.token.0,
            index: task.token.1,
        }),
        step: step.into(),
        state: state.into(),
        output_json: br#""ok""#.to_vec(),
        error_code: if state == "failed" {
            "PA720".into()
        } else {
            String::new()
        },
        error: String::new(),
        attempt: 1,
    }
}

#[test]
fn a_task_waits_for_a_worker_then_runs_its_steps_once() {
    let mut w = WorkState::default();
    let r = w.submit(
        submission("t1", vec![step("a", "sandbox", &[], &[])]),
        at(10, 100),
    );
    assert!(r.applied, "{r:?}");
    assert_eq!(w.tasks["t1"].state, TaskState::Queued);
    assert!(
        w.tasks["t1"].reason.contains("no node runs core"),
        "{}",
        w.tasks["t1"].reason
    );

    assert!(w.register_worker(7, register(7, 2), at(11, 200)).applied);
    let t = w.tasks["t1"].clone();
    assert_eq!(
        (t.state, t.owner, t.token),
        (TaskState::Running, 7, (1, 11))
    );

    // Only the owner, under the current token, reports; a step ends once.
    assert_eq!(
        w.step_update(8, update(&t, "a", "succeeded"), at(12, 300))
            .refusal,
        refusal::STALE_TOKEN
    );
    assert!(
        w.step_update(7, update(&t, "a", "succeeded"), at(13, 300))
            .applied
    );
    assert_eq!(w.tasks["t1"].state, TaskState::Succeeded);
    let again = w.step_update(7, update(&t, "a", "succeeded"), at(14, 300));
    assert!(!again.applied);
}

#[test]
fn a_lost_worker_loses_its_tasks_and_its_reports_are_refused() {
    let mut w = WorkState::default();
    w.register_worker(1, register(1, 4), at(1, 0));
    let steps = vec![
        step("a", "sandbox", &[], &[]),
        step("b", "sandbox", &["a"], &[]),
    ];
    w.submit(submission("t", steps), at(2, 10));
    let old = w.tasks["t"].clone();
    assert_eq!(old.owner, 1);
    assert!(
        w.step_update(1, update(&old, "a", "succeeded"), at(3, 20))
            .applied
    );

    // Node 2 registers; node 1 stops heartbeating and its lease (5 s) ends.
    w.register_worker(2, register(2, 4), at(4, 4_000));
    w.expire(at(5, 6_000));
    assert_eq!(w.tasks["t"].state, TaskState::Queued);
    w.heartbeat(
        2,
        proto::WorkerHeartbeat {
            node_id: 2,
            lease_ms: 5_000,
        },
        at(6, 6_000),
    );
    let new = w.tasks["t"].clone();
    assert_eq!(
        (new.state, new.owner, new.placements),
        (TaskState::Running, 2, 2)
    );
    assert!(new.token > old.token);
    // Step a stays done; the old owner's late report of b is refused.
    assert_eq!(new.step("a").unwrap().state, StepState::Succeeded);
    assert_eq!(
        w.step_update(1, update(&old, "b", "succeeded"), at(7, 6_100))
            .refusal,
        refusal::STALE_TOKEN
    );
    assert!(
        w.step_update(2, update(&new, "b", "succeeded"), at(8, 6_200))
            .applied
    );
    assert_eq!(w.tasks["t"].state, TaskState::Succeeded);
    // A heartbeat after the lease ended asks the worker to register again.
    let late = w.heartbeat(
        1,
        proto::WorkerHeartbeat {
            node_id: 1,
            lease_ms: 5_000,
        },
        at(9, 7_000),
    );
    assert_eq!(late.refusal, refusal::UNKNOWN_WORKER);
}

#[test]
fn the_task_bound_queues_work_until_a_slot_frees() {
    let mut w = WorkState::default();
    w.register_worker(1, register(1, 1), at(1, 0));
    w.submit(
        submission("a", vec![step("s", "sandbox", &[], &[])]),
        at(2, 1),
    );
    w.submit(
        submission("b", vec![step("s", "sandbox", &[], &[])]),
        at(3, 2),
    );
    assert_eq!(w.tasks["b"].state, TaskState::Queued);
    assert!(w.tasks["b"].reason.contains("waiting for room"));
    let a = w.tasks["a"].clone();
    w.step_update(1, update(&a, "s", "failed"), at(4, 3));
    assert_eq!(w.tasks["a"].state, TaskState::Failed);
    assert_eq!(w.tasks["a"].error_code, "PA720");
    assert_eq!(w.tasks["b"].state, TaskState::Running);
}

/// One slot, a parent that delegates: while it waits for its sub-task it holds no slot, so the
/// sub-task runs (otherwise both wait for ever); when the parent runs a step of its own again
/// it counts again.
#[test]
fn a_parent_waiting_for_its_sub_task_leaves_its_slot_to_it() {
    let mut w = WorkState::default();
    w.register_worker(1, register(1, 1), at(1, 0));
    let steps = vec![
        step("d", "delegate", &[], &[]),
        step("s", "sandbox", &["d"], &[]),
    ];
    w.submit(submission("p", steps), at(2, 1));
    w.submit(
        submission("other", vec![step("s", "sandbox", &[], &[])]),
        at(3, 1),
    );
    assert_eq!(w.tasks["other"].state, TaskState::Queued);
    let p = w.tasks["p"].clone();
    assert!(
        w.step_update(1, update(&p, "d", "running"), at(4, 2))
            .applied
    );
    // The slot went to the oldest queued task: `other`.
    assert_eq!(w.tasks["other"].state, TaskState::Running);
    let mut child = submission("p.d", vec![step("s", "sandbox", &[], &[])]);
    child.parent = "p".into();
    child.parent_step = "d".into();
    w.submit(child, at(5, 3));
    assert_eq!(w.tasks["p.d"].state, TaskState::Queued);
    let other = w.tasks["other"].clone();
    w.step_update(1, update(&other, "s", "succeeded"), at(6, 4));
    let c = w.tasks["p.d"].clone();
    assert_eq!(c.state, TaskState::Running);
    w.step_update(1, update(&c, "s", "succeeded"), at(7, 5));
    w.step_update(1, update(&p, "d", "succeeded"), at(8, 6));
    // `p` runs its own step now: it counts again, and a newcomer waits for it.
    w.step_update(1, update(&p, "s", "running"), at(9, 7));
    w.submit(
        submission("late", vec![step("s", "sandbox", &[], &[])]),
        at(10, 8),
    );
    assert_eq!(w.tasks["late"].state, TaskState::Queued);
}

#[test]
fn resubmitting_is_idempotent_and_cancel_reaches_sub_tasks() {
    let mut w = WorkState::default();
    let s = submission("p", vec![step("s", "sandbox", &[], &[])]);
    assert!(w.submit(s.clone(), at(1, 0)).applied);
    assert!(w.submit(s.clone(), at(2, 0)).applied);
    assert_eq!(w.tasks.len(), 1);
    let mut other = s.clone();
    other.inputs_json = br#"{"command":"false"}"#.to_vec();
    assert!(!w.submit(other, at(3, 0)).applied);

    let mut child = submission("p.s", vec![step("s", "sandbox", &[], &[])]);
    child.parent = "p".into();
    child.parent_step = "s".into();
    assert!(w.submit(child, at(4, 0)).applied);
    let r = w.cancel(
        proto::CancelTask {
            id: "p".into(),
            reason: String::new(),
        },
        at(5, 0),
    );
    assert!(r.applied);
    assert_eq!(w.tasks["p.s"].state, TaskState::Cancelled);
    assert!(w.queue.is_empty());
}

#[test]
fn bad_submissions_are_refused_with_the_reason() {
    let mut w = WorkState::default();
    let mut s = submission("x", vec![step("s", "sandbox", &[], &[])]);
    s.inputs_json = br#"{"command":1}"#.to_vec();
    let r = w.submit(s, at(1, 0));
    assert!(r.message.contains("must be a string"), "{r:?}");
    let r = w.submit(
        submission("../x", vec![step("s", "sandbox", &[], &[])]),
        at(2, 0),
    );
    assert_eq!(r.refusal, refusal::INVALID);
    let mut s = submission("y", vec![step("s", "sandbox", &[], &[])]);
    s.manifest_json = b"{}".to_vec();
    assert!(w.submit(s, at(3, 0)).message.contains("manifest"));
}

/// The proposer batches commands: several submissions can share one entry, so one log index.
/// Found by tests/integration/test_nemesis_tasks.py: a burst of submissions in one entry was
/// placed on one worker; when that worker's lease ended, only one of them went back to the
/// queue (keyed by the log index), the others stayed `queued` and were never placed.
#[test]
fn submissions_in_one_entry_each_keep_their_place_in_the_queue() {
    let mut w = WorkState::default();
    // Room for two tasks (1000m of 500m each).
    w.register_worker(1, register(1, 4), at(1, 0));
    let one = || vec![step("s", "sandbox", &[], &[])];
    for id in ["x", "y"] {
        assert!(w.submit(submission(id, one()), at(2, 10)).applied);
    }
    assert_eq!(
        (w.tasks["x"].submitted_index, w.tasks["y"].submitted_index),
        (2, 3)
    );
    assert!(w.tasks["x"].owner == 1 && w.tasks["y"].owner == 1);
    // The next entry's submission comes after them; it waits for room.
    assert!(w.submit(submission("later", one()), at(3, 20)).applied);
    assert_eq!(w.tasks["later"].submitted_index, 4);
    assert_eq!(w.tasks["later"].state, TaskState::Queued);

    // Node 1 is lost: both of its tasks go back to the queue, and all three are placed.
    w.expire(at(4, 6_000));
    assert_eq!(w.queue.len(), 3);
    w.register_worker(2, register(2, 4), at(5, 6_000));
    w.register_worker(3, register(3, 4), at(6, 6_000));
    for id in ["x", "y", "later"] {
        let t = &w.tasks[id];
        assert_eq!(t.state, TaskState::Running, "{id}");
        assert!(t.owner == 2 || t.owner == 3, "{id}");
    }
    assert!(w.queue.is_empty());

    // Waiting for room, too: with one slot, three submissions in one entry run one by one.
    let mut w = WorkState::default();
    w.register_worker(1, register(1, 1), at(1, 0));
    for id in ["x", "y", "z"] {
        w.submit(submission(id, one()), at(2, 10));
    }
    assert_eq!(w.queue.len(), 2);
    for (n, id) in ["x", "y", "z"].iter().enumerate() {
        let t = w.tasks[*id].clone();
        assert_eq!(t.state, TaskState::Running, "{id}");
        let index = 3 + n as u64;
        assert!(
            w.step_update(1, update(&t, "s", "succeeded"), at(index, 20))
                .applied
        );
        assert_eq!(w.tasks[*id].state, TaskState::Succeeded);
    }
    assert!(w.queue.is_empty());
}

/// The state keeps the newest finished top-level tasks only, each with its sub-tasks; what
/// runs or waits is never dropped, and a dropped id can be submitted again.
#[test]
fn only_the_newest_finished_tasks_are_kept() {
    let mut w = WorkState::default();
    w.register_worker(1, register(1, 4), at(1, 0));
    let one = || vec![step("s", "sandbox", &[], &[])];
    let mut index = 2;
    let finish = |w: &mut WorkState, id: &str, index: &mut u64| {
        w.submit(submission(id, one()), at(*index, 0));
        let t = w.tasks[id].clone();
        *index += 1;
        assert!(
            w.step_update(1, update(&t, "s", "succeeded"), at(*index, 0))
                .applied
        );
        *index += 1;
    };
    // The first task delegates: its sub-task goes with it.
    w.submit(
        submission("first", vec![step("d", "delegate", &[], &[])]),
        at(index, 0),
    );
    index += 1;
    let mut child = submission("first.d", one());
    child.parent = "first".into();
    child.parent_step = "d".into();
    w.submit(child, at(index, 0));
    index += 1;
    let c = w.tasks["first.d"].clone();
    w.step_update(1, update(&c, "s", "succeeded"), at(index, 0));
    index += 1;
    let p = w.tasks["first"].clone();
    w.step_update(1, update(&p, "d", "succeeded"), at(index, 0));
    index += 1;
    // A task that keeps running through it all.
    w.submit(submission("long", one()), at(index, 0));
    index += 1;
    for n in 0..RETAINED_FINISHED {
        finish(&mut w, &format!("t{n}"), &mut index);
    }
    assert!(!w.tasks.contains_key("first") && !w.tasks.contains_key("first.d"));
    assert!(w.tasks.contains_key("t0") && w.tasks.contains_key("long"));
    assert_eq!(w.tasks.len(), RETAINED_FINISHED + 1);
    finish(&mut w, "first", &mut index);
    assert!(!w.tasks.contains_key("t0") && w.tasks["first"].state == TaskState::Succeeded);
    let loaded: WorkState = rmp_serde::from_slice(&rmp_serde::to_vec(&w).unwrap()).unwrap();
    assert_eq!(loaded, w);
}

mod indexes {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Action {
        Submit { child_of: Option<u8> },
        Register(u8),
        Heartbeat(u8),
        Report { task: u8, fail: bool },
        Cancel(u8),
        Advance(u16),
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            3 => proptest::option::of(0u8..16).prop_map(|child_of| Action::Submit { child_of }),
            1 => (1u8..4).prop_map(Action::Register),
            1 => (1u8..4).prop_map(Action::Heartbeat),
            3 => (0u8..16, any::<bool>()).prop_map(|(task, fail)| Action::Report { task, fail }),
            1 => (0u8..16).prop_map(Action::Cancel),
            1 => (0u16..4000).prop_map(Action::Advance),
        ]
    }

    fn apply(w: &mut WorkState, a: &Action, index: u64, now: u64) {
        let at = at(index, now);
        let nth = |w: &WorkState, n: u8| w.tasks.keys().nth(n as usize).cloned();
        match a {
            Action::Submit { child_of } => {
                let mut s = submission(&format!("t{index}"), vec![step("s", "sandbox", &[], &[])]);
                if let Some(parent) = child_of.and_then(|n| nth(w, n)) {
                    s.parent = parent;
                    s.parent_step = "s".into();
                }
                w.submit(s, at);
            }
            Action::Register(n) => {
                w.register_worker(u64::from(*n), register(u64::from(*n), 2), at);
            }
            Action::Heartbeat(n) => {
                let h = proto::WorkerHeartbeat {
                    node_id: u64::from(*n),
                    lease_ms: 5_000,
                };
                w.heartbeat(u64::from(*n), h, at);
            }
            Action::Report { task, fail } => {
                if let Some(t) = nth(w, *task).map(|id| w.tasks[&id].clone()) {
                    let state = if *fail { "failed" } else { "succeeded" };
                    w.step_update(t.owner, update(&t, "s", state), at);
                }
            }
            Action::Cancel(n) => {
                if let Some(id) = nth(w, *n) {
                    let c = proto::CancelTask {
                        id,
                        reason: String::new(),
                    };
                    w.cancel(c, at);
                }
            }
            Action::Advance(_) => w.expire(at),
        }
    }

    proptest! {
        /// Whatever happens, the indexes kept along the way are the ones a snapshot rebuilds
        /// (WorkState's equality compares them), and the queue holds exactly the queued tasks.
        #[test]
        fn kept_indexes_equal_rebuilt_ones(actions in proptest::collection::vec(action(), 1..60)) {
            let mut w = WorkState::default();
            let mut now = 0u64;
            for (i, a) in actions.iter().enumerate() {
                if let Action::Advance(ms) = a {
                    now += u64::from(*ms);
                }
                apply(&mut w, a, i as u64 + 1, now);
                let bytes = rmp_serde::to_vec(&w).unwrap();
                let loaded: WorkState = rmp_serde::from_slice(&bytes).unwrap();
                prop_assert_eq!(&loaded, &w);
                let queued: BTreeSet<&String> = w.tasks.values()
                    .filter(|t| t.state == TaskState::Queued).map(|t| &t.id).collect();
                prop_assert_eq!(queued, w.queue.values().collect::<BTreeSet<_>>());
            }
        }
    }
}
