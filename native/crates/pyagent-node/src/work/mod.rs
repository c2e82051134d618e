//! Work: tasks that run logic manifests, placed on the swarm's workers by the replicated state
//! machine (docs/tasks.md).
//!
//! Everything here is part of the Raft-committed state and pure: the leader's clock stamped
//! into each entry is the only time, so every replica places, expires and finishes tasks
//! identically. A task's owner holds it under a fencing token (term, index of the entry that
//! placed it); a worker that stops heartbeating loses its tasks when its lease ends, they are
//! placed again under a new token, and the old owner's reports are refused from then on.

pub mod executor;
pub mod manifest;
pub mod metrics;
pub mod place;
pub mod propose;
pub mod sandbox_step;
pub mod scenario;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::proto;
use crate::state::refusal;
use crate::telemetry::TaskTrace;
use crate::types::ApplyResult;
use manifest::Manifest;

/// A worker's lease bounds, so a bad command cannot pin tasks for ever nor expire at once.
pub const MIN_LEASE_MS: u64 = 1_000;
pub const MAX_LEASE_MS: u64 = 300_000;
/// Sandbox isolation levels, strongest first (pyagent-sandbox's `IsolationLevel`).
pub const ISOLATION_LEVELS: &[&str] = &["namespaces", "landlock_seccomp", "limits_only"];
/// Task ids: what a file name and a metric label can hold.
pub const MAX_ID_LEN: usize = 128;
/// Finished top-level tasks kept in the replicated state (with their sub-tasks); the oldest
/// beyond it are dropped, as Kubernetes drops finished Jobs after their TTL. Every replica must
/// use the same figure (a change needs every node upgraded at once), so it is not a setting.
pub const RETAINED_FINISHED: usize = 10_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub gpu_memory_bytes: u64,
}

impl Resources {
    pub fn fits_in(&self, room: &Resources) -> bool {
        self.cpu_millis <= room.cpu_millis
            && self.memory_bytes <= room.memory_bytes
            && self.gpu_memory_bytes <= room.gpu_memory_bytes
    }

    pub fn minus(&self, used: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(used.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(used.memory_bytes),
            gpu_memory_bytes: self.gpu_memory_bytes.saturating_sub(used.gpu_memory_bytes),
        }
    }
}

impl From<Option<proto::Resources>> for Resources {
    fn from(r: Option<proto::Resources>) -> Self {
        let r = r.unwrap_or_default();
        Resources {
            cpu_millis: r.cpu_millis,
            memory_bytes: r.memory_bytes,
            gpu_memory_bytes: r.gpu_memory_bytes,
        }
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu {}m, memory {} B, GPU memory {} B",
            self.cpu_millis, self.memory_bytes, self.gpu_memory_bytes
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    pub pool: String,
    pub cores: Vec<String>,
    pub capacity: Resources,
    pub max_tasks: u32,
    pub isolation: String,
    pub lease_until_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl StepState {
    pub fn label(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepState::Succeeded | StepState::Failed | StepState::Cancelled
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    pub kind: String,
    pub state: StepState,
    pub attempt: u32,
    #[serde(with = "crate::types::serde_bytes_vec")]
    pub output_json: Vec<u8>,
    pub error_code: String,
    pub error: String,
    pub started_ms: u64,
    pub finished_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkTask {
    pub id: String,
    pub manifest: String,
    pub core: String,
    #[serde(with = "crate::types::serde_bytes_vec")]
    pub manifest_json: Vec<u8>,
    #[serde(with = "crate::types::serde_bytes_vec")]
    pub inputs_json: Vec<u8>,
    pub resources: Resources,
    pub parent: String,
    pub parent_step: String,
    pub state: TaskState,
    pub reason: String,
    pub error_code: String,
    /// Node id of the owner; 0 when not placed.
    pub owner: u64,
    pub token: (u64, u64),
    pub placements: u64,
    pub steps: Vec<StepRecord>,
    #[serde(with = "crate::types::serde_bytes_vec")]
    pub outputs_json: Vec<u8>,
    pub submitted_ms: u64,
    pub finished_ms: u64,
    /// The task's place in the queue: the log index of its submission, or one past the previous
    /// task's when one entry submitted several (the proposer batches commands into one entry);
    /// unique, so it keys `WorkState::queue`. `revision` is the log index of the last change.
    pub submitted_index: u64,
    pub revision: u64,
    /// A scenario's stubs (tool results and model answers replayed instead of called), JSON;
    /// empty for other tasks. Last, with a default: a snapshot saved before it loads.
    #[serde(default, with = "crate::types::serde_bytes_vec")]
    pub stubs_json: Vec<u8>,
    /// Its place in its trace (telemetry.rs). Last, with a default, like `stubs_json`.
    #[serde(default)]
    pub trace: TaskTrace,
}

impl WorkTask {
    pub fn step(&self, id: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Whether the task only waits for sub-tasks it delegated: every step it runs is a
    /// `delegate`. Such a task holds no slot nor resources on its node (as Ray releases a task's
    /// CPUs while it blocks in `ray.get`): otherwise parents holding every slot would wait for
    /// children that can never be placed.
    pub fn waits_on_sub_tasks(&self) -> bool {
        let mut running = self
            .steps
            .iter()
            .filter(|s| s.state == StepState::Running)
            .peekable();
        running.peek().is_some() && running.all(|s| s.kind == "delegate")
    }

    fn same_submission(&self, s: &proto::SubmitTask) -> bool {
        self.manifest == s.manifest
            && self.core == s.core
            && self.manifest_json == s.manifest_json
            && self.inputs_json == s.inputs_json
            && self.parent == s.parent
            && self.parent_step == s.parent_step
            && self.stubs_json == s.stubs_json
    }
}

/// The work part of the swarm state.
///
/// `running` and `children` are indexes derived from `tasks`: not saved (a snapshot holds the
/// same bytes as before they existed) and rebuilt when a state is loaded, so that placement,
/// the executor and ending a task touch the tasks that matter, not every task ever submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredWorkState")]
pub struct WorkState {
    pub tasks: BTreeMap<String, WorkTask>,
    /// Queued tasks by their `submitted_index`: placement goes in that order.
    pub queue: BTreeMap<u64, String>,
    pub workers: BTreeMap<u64, Worker>,
    /// The last `submitted_index` given (0 in a state saved before it was kept).
    pub last_submitted: u64,
    /// Running tasks by owner.
    #[serde(skip)]
    running: BTreeMap<u64, BTreeSet<String>>,
    /// Sub-tasks by parent (whatever their state).
    #[serde(skip)]
    children: BTreeMap<String, BTreeSet<String>>,
    /// Finished top-level tasks by (the log index that ended them, id): the retention order.
    #[serde(skip)]
    finished: BTreeSet<(u64, String)>,
}

/// What a snapshot holds of `WorkState` (the same fields, in the same order).
#[derive(Deserialize)]
struct StoredWorkState {
    tasks: BTreeMap<String, WorkTask>,
    queue: BTreeMap<u64, String>,
    workers: BTreeMap<u64, Worker>,
    #[serde(default)]
    last_submitted: u64,
}

impl From<StoredWorkState> for WorkState {
    fn from(s: StoredWorkState) -> Self {
        let mut work = WorkState {
            tasks: s.tasks,
            queue: s.queue,
            workers: s.workers,
            last_submitted: s.last_submitted,
            running: BTreeMap::new(),
            children: BTreeMap::new(),
            finished: BTreeSet::new(),
        };
        work.reindex();
        work
    }
}

/// Where a command sits in the log and what time it is, for every operation below.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub term: u64,
    pub index: u64,
    pub now: u64,
}

fn refused(code: &str, message: impl Into<String>) -> ApplyResult {
    ApplyResult::refused(code, message)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.')
}

impl WorkState {
    fn reindex(&mut self) {
        self.running.clear();
        self.children.clear();
        self.finished.clear();
        for t in self.tasks.values() {
            if t.state.is_final() && t.parent.is_empty() {
                // A final task's revision is the index that ended it: nothing changes it after.
                self.finished.insert((t.revision, t.id.clone()));
            }
            if t.state == TaskState::Running {
                self.running
                    .entry(t.owner)
                    .or_default()
                    .insert(t.id.clone());
            }
            if !t.parent.is_empty() {
                self.children
                    .entry(t.parent.clone())
                    .or_default()
                    .insert(t.id.clone());
            }
        }
    }

    /// The ids of the tasks running on `node`.
    pub fn running_on(&self, node: u64) -> impl Iterator<Item = &WorkTask> {
        self.running
            .get(&node)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
    }

    /// Every running task.
    pub fn running(&self) -> impl Iterator<Item = &WorkTask> {
        self.running
            .values()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
    }

    /// Drops the oldest finished top-level tasks, with their sub-tasks, beyond
    /// [`RETAINED_FINISHED`].
    fn retain(&mut self) {
        while self.finished.len() > RETAINED_FINISHED {
            let Some((_, id)) = self.finished.pop_first() else {
                return;
            };
            self.forget(&id);
        }
    }

    fn forget(&mut self, id: &str) {
        self.tasks.remove(id);
        for child in self.children.remove(id).unwrap_or_default() {
            self.forget(&child);
        }
    }

    fn unmark_running(&mut self, owner: u64, id: &str) {
        if let Some(ids) = self.running.get_mut(&owner) {
            ids.remove(id);
            if ids.is_empty() {
                self.running.remove(&owner);
            }
        }
    }

    /// Takes tasks away from workers whose lease ended: they go back to the queue (their
    /// finished steps stay finished) and are placed again under a new token.
    pub fn expire(&mut self, at: At) {
        let dead: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, w)| w.lease_until_ms <= at.now)
            .map(|(id, _)| *id)
            .collect();
        if dead.is_empty() {
            return;
        }
        for node in dead {
            for id in self.running.remove(&node).unwrap_or_default() {
                let Some(t) = self.tasks.get_mut(&id) else {
                    continue;
                };
                t.reason = format!("node {} lost its lease; placing the task again", t.owner);
                t.state = TaskState::Queued;
                t.owner = 0;
                t.revision = at.index;
                for s in t.steps.iter_mut().filter(|s| s.state == StepState::Running) {
                    s.state = StepState::Pending;
                }
                self.queue.insert(t.submitted_index, t.id.clone());
            }
        }
        // A worker whose lease ended stays listed (for `status`), with no room, until it
        // heartbeats again; nothing is placed on it meanwhile.
    }

    /// Places queued tasks, oldest first, while some worker has room for them.
    pub fn place_queued(&mut self, at: At) {
        if self.queue.is_empty() {
            return;
        }
        let mut rooms = place::rooms(self, at.now);
        let queued: Vec<(u64, String)> =
            self.queue.iter().map(|(i, id)| (*i, id.clone())).collect();
        for (index, id) in queued {
            let Some(task) = self.tasks.get_mut(&id) else {
                self.queue.remove(&index);
                continue;
            };
            match place::place(&task.core, &task.resources, &self.workers, &rooms) {
                Ok(node) => {
                    task.state = TaskState::Running;
                    task.owner = node;
                    task.token = (at.term, at.index);
                    task.placements += 1;
                    task.reason = String::new();
                    task.revision = at.index;
                    if let Some(room) = rooms.get_mut(&node) {
                        room.free = room.free.minus(&task.resources);
                        room.running += 1;
                    }
                    self.running.entry(node).or_default().insert(id);
                    self.queue.remove(&index);
                }
                Err(reason) => {
                    if task.reason != reason {
                        task.reason = reason;
                        task.revision = at.index;
                    }
                }
            }
        }
    }

    /// What the state machine checks of a new submission: the manifest parses and forms a DAG,
    /// it is the one named, the inputs match their types, the parent (if any) is going.
    fn check_submission(&self, s: &proto::SubmitTask) -> Result<Manifest, ApplyResult> {
        let manifest =
            Manifest::parse(&s.manifest_json).map_err(|e| refused(refusal::INVALID, e))?;
        if manifest.name != s.manifest || manifest.core != s.core {
            return Err(refused(
                refusal::INVALID,
                format!(
                    "the manifest given is {:?} of core {:?}, not {:?} of {:?}",
                    manifest.name, manifest.core, s.manifest, s.core
                ),
            ));
        }
        let inputs: serde_json::Value = serde_json::from_slice(&s.inputs_json)
            .map_err(|e| refused(refusal::INVALID, format!("inputs are not JSON: {e}")))?;
        manifest
            .check_inputs(&inputs)
            .map_err(|e| refused(refusal::INVALID, e))?;
        if !s.parent.is_empty() {
            match self.tasks.get(&s.parent) {
                Some(p) if !p.state.is_final() => {}
                Some(_) => {
                    return Err(refused(
                        refusal::INVALID,
                        format!("parent task {:?} has ended", s.parent),
                    ))
                }
                None => {
                    return Err(refused(
                        refusal::INVALID,
                        format!("unknown parent task {:?}", s.parent),
                    ))
                }
            }
        }
        Ok(manifest)
    }

    #[cfg(test)]
    pub fn submit(&mut self, s: proto::SubmitTask, at: At) -> ApplyResult {
        self.submit_in("test-swarm", s, at)
    }

    /// Applies a submission to swarm `swarm` (which keys the ids of the traces it starts).
    pub fn submit_in(&mut self, swarm: &str, s: proto::SubmitTask, at: At) -> ApplyResult {
        if !valid_id(&s.id) {
            return refused(
                refusal::INVALID,
                format!(
                    "task id {:?}: 1 to {MAX_ID_LEN} of [A-Za-z0-9._-], not starting with '.'",
                    s.id
                ),
            );
        }
        if let Some(existing) = self.tasks.get(&s.id) {
            return if existing.same_submission(&s) {
                ApplyResult {
                    message: format!("task {:?} exists (same submission)", s.id),
                    ..ApplyResult::ok()
                }
            } else {
                refused(
                    refusal::INVALID,
                    format!("task {:?} exists with another submission", s.id),
                )
            };
        }
        let manifest = match self.check_submission(&s) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let trace = match TaskTrace::for_submission(swarm, &s.id, at.index, &s.traceparent) {
            Ok(t) => t,
            Err(e) => return refused(refusal::INVALID, format!("task {:?}: {e}", s.id)),
        };
        let steps = manifest
            .steps
            .iter()
            .map(|st| StepRecord {
                id: st.id.clone(),
                kind: st.kind.clone(),
                state: StepState::Pending,
                attempt: 0,
                output_json: Vec::new(),
                error_code: String::new(),
                error: String::new(),
                started_ms: 0,
                finished_ms: 0,
            })
            .collect();
        // Several submissions in one entry share its index: each needs a queue key of its own,
        // or the next overwrites it and a task that waits for room (or is queued again when its
        // worker is lost) is never placed.
        let order = at.index.max(self.last_submitted.saturating_add(1));
        self.last_submitted = order;
        let task = WorkTask {
            id: s.id.clone(),
            manifest: s.manifest,
            core: s.core,
            manifest_json: s.manifest_json,
            inputs_json: s.inputs_json,
            resources: s.resources.into(),
            parent: s.parent,
            parent_step: s.parent_step,
            state: TaskState::Queued,
            reason: "waiting for placement".into(),
            error_code: String::new(),
            owner: 0,
            token: (0, 0),
            placements: 0,
            steps,
            outputs_json: Vec::new(),
            submitted_ms: at.now,
            finished_ms: 0,
            submitted_index: order,
            revision: at.index,
            stubs_json: s.stubs_json,
            trace,
        };
        if !task.parent.is_empty() {
            self.children
                .entry(task.parent.clone())
                .or_default()
                .insert(task.id.clone());
        }
        self.tasks.insert(s.id.clone(), task);
        self.queue.insert(order, s.id);
        self.place_queued(at);
        ApplyResult::ok()
    }

    /// Ends a task and, recursively, the sub-tasks it delegated that are still going.
    fn end(&mut self, id: &str, state: TaskState, code: &str, reason: String, at: At) {
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        if t.state.is_final() {
            return;
        }
        let was_running = (t.state == TaskState::Running).then_some(t.owner);
        if t.parent.is_empty() {
            self.finished.insert((at.index, id.to_string()));
        }
        t.state = state;
        t.error_code = code.to_string();
        t.reason = reason;
        t.finished_ms = at.now;
        t.revision = at.index;
        for s in t.steps.iter_mut().filter(|s| !s.state.is_final()) {
            s.state = StepState::Cancelled;
            s.finished_ms = at.now;
        }
        let queued_at = t.submitted_index;
        if let Some(owner) = was_running {
            self.unmark_running(owner, id);
        }
        if self.queue.get(&queued_at).is_some_and(|q| q == id) {
            self.queue.remove(&queued_at);
        }
        let children: Vec<String> = self
            .children
            .get(id)
            .into_iter()
            .flatten()
            .filter(|c| self.tasks.get(*c).is_some_and(|c| !c.state.is_final()))
            .cloned()
            .collect();
        for c in children {
            self.end(
                &c,
                TaskState::Cancelled,
                "PA724",
                format!("its parent task {id:?} ended"),
                at,
            );
        }
    }

    pub fn cancel(&mut self, c: proto::CancelTask, at: At) -> ApplyResult {
        match self.tasks.get(&c.id) {
            None => return refused(refusal::UNKNOWN_TASK, format!("no task {:?}", c.id)),
            Some(t) if t.state.is_final() => {
                return ApplyResult {
                    message: format!("task {:?} had already ended: {}", c.id, t.state.label()),
                    ..ApplyResult::ok()
                }
            }
            Some(_) => {}
        }
        let reason = if c.reason.is_empty() {
            "cancelled".to_string()
        } else {
            c.reason
        };
        self.end(&c.id, TaskState::Cancelled, "PA723", reason, at);
        self.place_queued(at);
        self.retain();
        ApplyResult::ok()
    }

    pub fn register_worker(
        &mut self,
        signer: u64,
        r: proto::RegisterWorker,
        at: At,
    ) -> ApplyResult {
        if r.node_id != signer {
            return refused(
                refusal::INVALID,
                format!(
                    "node {signer} cannot register node {} as a worker",
                    r.node_id
                ),
            );
        }
        let lease = r.lease_ms.clamp(MIN_LEASE_MS, MAX_LEASE_MS);
        self.workers.insert(
            r.node_id,
            Worker {
                pool: r.pool,
                cores: r.cores,
                capacity: r.capacity.into(),
                max_tasks: r.max_tasks.max(1),
                isolation: r.isolation,
                lease_until_ms: at.now.saturating_add(lease),
            },
        );
        self.place_queued(at);
        ApplyResult {
            lease_expires_ms: at.now.saturating_add(lease),
            ..ApplyResult::ok()
        }
    }

    pub fn heartbeat(&mut self, signer: u64, h: proto::WorkerHeartbeat, at: At) -> ApplyResult {
        if h.node_id != signer {
            return refused(refusal::INVALID, "a worker heartbeats for itself only");
        }
        let Some(w) = self.workers.get_mut(&h.node_id) else {
            return refused(
                refusal::UNKNOWN_WORKER,
                format!("node {} is not a worker", h.node_id),
            );
        };
        if w.lease_until_ms <= at.now {
            // Its tasks were taken away; it registers again (and says what it has now).
            return refused(
                refusal::UNKNOWN_WORKER,
                "the worker's lease ended; register again",
            );
        }
        let lease = h.lease_ms.clamp(MIN_LEASE_MS, MAX_LEASE_MS);
        w.lease_until_ms = w.lease_until_ms.max(at.now.saturating_add(lease));
        let until = w.lease_until_ms;
        self.place_queued(at);
        ApplyResult {
            lease_expires_ms: until,
            ..ApplyResult::ok()
        }
    }

    pub fn step_update(&mut self, signer: u64, u: proto::StepUpdate, at: At) -> ApplyResult {
        let token = u.token.map(|t| (t.term, t.index));
        let Some(t) = self.tasks.get_mut(&u.task) else {
            return refused(refusal::UNKNOWN_TASK, format!("no task {:?}", u.task));
        };
        if t.state != TaskState::Running || t.owner != signer || Some(t.token) != token {
            return refused(
                refusal::STALE_TOKEN,
                format!(
                    "task {:?} is {} under token {:?} of node {}; the report of node {signer} under {token:?} is refused",
                    u.task,
                    t.state.label(),
                    t.token,
                    t.owner
                ),
            );
        }
        let Some(step) = t.steps.iter_mut().find(|s| s.id == u.step) else {
            return refused(
                refusal::INVALID,
                format!("task {:?} has no step {:?}", u.task, u.step),
            );
        };
        if step.state.is_final() {
            return refused(
                refusal::ALREADY_DONE,
                format!(
                    "step {:?} of task {:?} is already {}",
                    u.step,
                    u.task,
                    step.state.label()
                ),
            );
        }
        match u.state.as_str() {
            "running" => {
                step.state = StepState::Running;
                step.attempt = u.attempt;
                step.started_ms = at.now;
            }
            "succeeded" => {
                step.state = StepState::Succeeded;
                step.attempt = u.attempt;
                step.output_json = u.output_json;
                step.finished_ms = at.now;
            }
            "failed" => {
                step.state = StepState::Failed;
                step.attempt = u.attempt;
                // What a failed step still produced (a verify step's verdict), if anything.
                step.output_json = u.output_json;
                step.error_code = u.error_code.clone();
                step.error = u.error.clone();
                step.finished_ms = at.now;
            }
            other => return refused(refusal::INVALID, format!("unknown step state {other:?}")),
        }
        t.revision = at.index;
        let id = t.id.clone();
        let frees_its_slot = u.state == "running" && t.waits_on_sub_tasks();
        if frees_its_slot {
            self.place_queued(at);
        } else if u.state == "failed" {
            let reason = format!("step {:?} failed: {}", u.step, u.error);
            self.end(&id, TaskState::Failed, &u.error_code, reason, at);
            self.place_queued(at);
        } else if t.steps.iter().all(|s| s.state == StepState::Succeeded) {
            self.succeed(&id, at);
            self.place_queued(at);
        }
        self.retain();
        ApplyResult::ok()
    }

    /// All steps succeeded: the outputs are the named steps' outputs.
    fn succeed(&mut self, id: &str, at: At) {
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        let outputs = Manifest::parse(&t.manifest_json)
            .map(|m| {
                m.outputs
                    .iter()
                    .filter_map(|(name, out)| {
                        let step = manifest::source(&out.from).and_then(|s| match s {
                            manifest::Source::Step(sid) => t.step(sid),
                            manifest::Source::Input(_) => None,
                        })?;
                        let value = serde_json::from_slice(&step.output_json)
                            .unwrap_or(serde_json::Value::Null);
                        Some((name.clone(), value))
                    })
                    .collect::<serde_json::Map<_, _>>()
            })
            .unwrap_or_default();
        t.outputs_json = serde_json::to_vec(&outputs).unwrap_or_default();
        let owner = t.owner;
        if t.parent.is_empty() {
            self.finished.insert((at.index, id.to_string()));
        }
        t.state = TaskState::Succeeded;
        t.reason = String::new();
        t.finished_ms = at.now;
        t.revision = at.index;
        self.unmark_running(owner, id);
    }
}

#[cfg(test)]
mod tests;
