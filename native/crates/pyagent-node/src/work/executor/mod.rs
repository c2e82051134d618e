//! The executor: on a worker node, runs the tasks the state machine placed on it.
//!
//! Three loops: registration and heartbeats (the worker's lease, which is its tasks' ownership),
//! a supervisor that starts a runner for each task this node owns under its current token and
//! stops runners whose task moved on, and the runners, which run a manifest's steps as its DAG:
//! every step whose dependencies succeeded starts at once, each with its timeout and retries,
//! and its result is committed under the task's fencing token before anything that needs it
//! starts. A result refused as stale means the task was taken away: the runner stops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use openraft::metrics::RaftDataMetrics;
use openraft::type_config::alias::WatchReceiverOf;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

mod model_steps;
mod spans;
mod sub_tasks;
mod tool_steps;
mod workspace;

pub use workspace::task_workspace;
use workspace::{image_cache, release_all, release_workspace, workspace_root};

use super::manifest::{self, Manifest, Source, Step};
use super::propose::propose_until_answered;
use super::scenario::{Scenario, TaskStubs};
use super::{Resources, StepState, TaskState, WorkTask};
use crate::proto::{self, command::Op};
use crate::shared::Shared;
use crate::sm::{read_state, Raft};
use crate::state::refusal;
use crate::types::{LogId, TypeConfig};
use pyagent_mesh::Event;

/// The longest the supervisor and runners go without looking at the applied state. They wake
/// when the state machine applies an entry ([`Applied`]), so this is a fallback,
/// not the latency: polling alone at 50 ms was most of a short task's submit-to-done time
/// (benchmarks/tasks.py).
const POLL: Duration = Duration::from_millis(50);

/// Wakes a loop that reads the applied state when the state machine has applied a new entry
/// (openraft's data metrics carry the last applied log id; the state is written before they
/// move), or after a poll interval, whichever is first. Everything is re-read from the state
/// after a wake-up, so a missed or spurious one costs at most an interval.
pub(crate) struct Applied {
    rx: WatchReceiverOf<TypeConfig, RaftDataMetrics<TypeConfig>>,
    seen: Option<LogId>,
}

impl Applied {
    pub(crate) fn new(raft: &Raft) -> Applied {
        let rx = raft.data_metrics();
        let seen = rx.borrow_watched().last_applied;
        Applied { rx, seen }
    }

    pub(crate) async fn next(&mut self, poll: Duration) {
        let applied = async {
            loop {
                if self.rx.changed().await.is_err() {
                    // The Raft core stopped: nothing will be applied; the timer ends the wait.
                    std::future::pending::<()>().await;
                }
                let now = self.rx.borrow_and_update().last_applied;
                if now != self.seen {
                    self.seen = now;
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(poll, applied).await;
    }
}

/// Beyond a step's timeout before the executor drops it: a sandbox step's own wall-clock
/// limit (the same timeout) kills and reports first.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// A step's failure: a stable code (docs/tasks.md lists them) and what happened.
#[derive(Debug, Clone)]
pub struct StepError {
    pub code: &'static str,
    pub message: String,
    /// Whether another attempt may succeed (a timeout, a sandbox killed at its limits).
    pub retryable: bool,
    /// What the failed step still produced (a verify step's verdict), recorded with the failure.
    pub output: Option<serde_json::Value>,
}

impl StepError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        StepError {
            code,
            message: message.into(),
            retryable: false,
            output: None,
        }
    }
}

/// `work.json` (`pyagent.dev/work/v1alpha1`): every manifest and core of the swarm, read for
/// delegation (a sub-task's manifest and resources).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkFile {
    pub api_version: String,
    pub swarm: String,
    pub cores: BTreeMap<String, CoreEntry>,
    pub manifests: BTreeMap<String, Manifest>,
    /// Each core's MCP servers (only cores that declare some).
    #[serde(default)]
    pub tools: BTreeMap<String, Vec<pyagent_mcp::ToolServer>>,
    /// Each core's model (only cores that declare one).
    #[serde(default)]
    pub models: BTreeMap<String, pyagent_model::WorkModel>,
    /// The scenarios `verify` steps run, by the path the step names.
    #[serde(default)]
    pub scenarios: BTreeMap<String, Scenario>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CoreEntry {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub gpu_memory_bytes: u64,
}

pub const WORK_API: &str = "pyagent.dev/work/v1alpha1";

pub fn read_work_file(path: &std::path::Path) -> Result<WorkFile, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_slice(&text);
    let w: WorkFile = serde_path_to_error::deserialize(de)
        .map_err(|e| format!("{}: {}: {}", path.display(), e.path(), e.inner()))?;
    if w.api_version != WORK_API {
        return Err(format!(
            "{}: apiVersion {:?}, this node reads {WORK_API}",
            path.display(),
            w.api_version
        ));
    }
    Ok(w)
}

/// What a runner needs besides the shared node.
pub struct Context {
    pub shared: Arc<Shared>,
    pub work: Result<WorkFile, String>,
    pub isolation: String,
    pub workspaces: PathBuf,
    /// Step images: the node's OCI layout and its cache of unpacked roots, if it has a layout.
    pub images: Option<pyagent_image::ImageStore>,
    /// One model client per core (each pools its connections), made at the core's first step.
    pub models: std::sync::Mutex<BTreeMap<String, pyagent_model::ChatClient>>,
}

/// Runs this node's part of the work until `stop`: nothing when it is not a worker.
pub async fn run(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let Some(cfg) = shared.cfg.work.clone() else {
        return;
    };
    let work = read_work_file(&cfg.file);
    if let Err(e) = &work {
        tracing::error!(error = %e, "work file unreadable: delegate steps will fail (PA726)");
    }
    let isolation = super::sandbox_step::isolation_level();
    let images = cfg
        .image_layout
        .as_ref()
        .map(|layout| pyagent_image::ImageStore::new(layout, image_cache(&shared.cfg)));
    let ctx = Arc::new(Context {
        images,
        models: std::sync::Mutex::default(),
        workspaces: workspace_root(&shared.cfg),
        shared: shared.clone(),
        work,
        isolation,
    });
    // Workspaces are scratch for one owner's run of a task (steps pass values through their
    // outputs): what a previous run of this node left is removed, at start and at stop.
    release_all(&ctx.workspaces);
    let lease = tokio::spawn(keep_lease(ctx.clone(), stop.clone()));
    supervise(ctx.clone(), stop).await;
    lease.abort();
    release_all(&ctx.workspaces);
}

fn me(shared: &Shared) -> u64 {
    shared.cfg.node_id
}

fn is_member(shared: &Shared) -> bool {
    use openraft::async_runtime::WatchReceiver as _;
    let m = shared.raft.metrics().borrow_watched().clone();
    m.membership_config
        .membership()
        .get_node(&me(shared))
        .is_some()
        && m.current_leader.is_some()
}

fn registration(ctx: &Context) -> Op {
    let shared = &ctx.shared;
    let cfg = shared
        .cfg
        .work
        .as_ref()
        .expect("a worker has a work section");
    Op::RegisterWorker(proto::RegisterWorker {
        node_id: me(shared),
        pool: shared.cfg.pool.clone(),
        cores: shared.cfg.cores.clone(),
        capacity: Some(proto::Resources {
            cpu_millis: cfg.capacity.cpu_millis,
            memory_bytes: cfg.capacity.memory_bytes,
            gpu_memory_bytes: cfg.capacity.gpu_memory_bytes,
        }),
        max_tasks: cfg.max_tasks,
        isolation: ctx.isolation.clone(),
        lease_ms: cfg.lease_ms,
    })
}

/// Registers this node as a worker once it is a member, then heartbeats at a third of the
/// lease; registers again when told its lease ended.
async fn keep_lease(ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    let shared = ctx.shared.clone();
    let lease_ms = shared
        .cfg
        .work
        .as_ref()
        .map(|w| w.lease_ms)
        .unwrap_or(10_000);
    let beat = Duration::from_millis((lease_ms / 3).max(100));
    let mut registered = false;
    while !*stop.borrow() {
        if !is_member(&shared) {
            tokio::time::sleep(POLL * 4).await;
            continue;
        }
        let op = if registered {
            Op::WorkerHeartbeat(proto::WorkerHeartbeat {
                node_id: me(&shared),
                lease_ms,
            })
        } else {
            registration(&ctx)
        };
        match propose_until_answered(&shared, op, &stop).await {
            Some(r) if r.applied => {
                if !registered {
                    tracing::info!(isolation = %ctx.isolation, "registered as a worker");
                }
                registered = true;
            }
            Some(r) if r.refusal == refusal::UNKNOWN_WORKER => registered = false,
            Some(r) => {
                tracing::warn!(refusal = %r.refusal, message = %r.message, "worker lease refused")
            }
            None => return,
        }
        if registered {
            tokio::time::sleep(beat).await;
        }
    }
}

/// The tasks this node owns now: id → token.
fn owned(shared: &Shared) -> BTreeMap<String, (u64, u64)> {
    let st = read_state(&shared.state);
    st.work
        .running_on(me(shared))
        .map(|t| (t.id.clone(), t.token))
        .collect()
}

async fn supervise(ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    let mut runners: BTreeMap<String, ((u64, u64), tokio::task::JoinHandle<()>)> = BTreeMap::new();
    let mut applied = Applied::new(&ctx.shared.raft);
    while !*stop.borrow() {
        let now_owned = owned(&ctx.shared);
        runners.retain(|id, (token, handle)| {
            let owned = now_owned.get(id) == Some(token);
            let keep = owned && !handle.is_finished();
            if !keep {
                // Dropping the runner's futures kills its sandboxes.
                handle.abort();
            }
            if !owned {
                release_workspace(&ctx.workspaces, id);
                announce_end(&ctx.shared, id);
            }
            keep
        });
        for (id, token) in now_owned {
            if runners.contains_key(&id) {
                continue;
            }
            let handle = tokio::spawn(run_task(ctx.clone(), id.clone(), token));
            runners.insert(id, (token, handle));
        }
        applied.next(POLL).await;
    }
    for (_, (_, handle)) in runners {
        handle.abort();
    }
}

/// The task as committed, if this node still owns it under `token`.
fn current(shared: &Shared, id: &str, token: (u64, u64)) -> Option<WorkTask> {
    let st = read_state(&shared.state);
    let t = st.work.tasks.get(id)?;
    (t.state == TaskState::Running && t.owner == me(shared) && t.token == token).then(|| t.clone())
}

/// Steps whose dependencies all succeeded and that have not ended.
fn ready<'a>(m: &'a Manifest, t: &WorkTask) -> Vec<&'a Step> {
    let done: BTreeSet<&str> = t
        .steps
        .iter()
        .filter(|s| s.state == StepState::Succeeded)
        .map(|s| s.id.as_str())
        .collect();
    m.steps
        .iter()
        .filter(|s| {
            let state = t.step(&s.id).map(|r| r.state);
            matches!(state, Some(StepState::Pending | StepState::Running))
                && s.dependencies().is_subset(&done)
        })
        .collect()
}

/// The task's MCP servers: started by its first `mcp` step, kept for its later ones, shut down
/// when the runner ends (or killed, whole trees, when it is dropped: cancelled or aborted).
type McpSlot = Arc<tokio::sync::OnceCell<pyagent_mcp::McpSessions>>;

async fn run_task(ctx: Arc<Context>, id: String, token: (u64, u64)) {
    let mcp: McpSlot = Arc::default();
    if let Some(task) = current(&ctx.shared, &id, token) {
        crate::mesh::announce(
            &ctx.shared,
            Event::TaskStarted {
                task: id.clone(),
                manifest: task.manifest.clone(),
                traceparent: task.trace.traceparent(),
            },
        );
    }
    run_steps(ctx, id, token, mcp.clone()).await;
    if let Some(sessions) = mcp.get() {
        sessions.shutdown().await;
    }
}

/// Tells the swarm how a task this node ran ended. The supervisor calls it when the task
/// leaves this node's hands (the runner itself may be aborted by then).
fn announce_end(shared: &Shared, id: &str) {
    let ended = read_state(&shared.state)
        .work
        .tasks
        .get(id)
        .filter(|t| t.owner == me(shared) && t.state.is_final())
        .cloned();
    if let Some(task) = ended {
        spans::task_ended(&shared.telemetry, &task);
        let outcome = task.state.label().to_owned();
        crate::mesh::announce(
            shared,
            Event::TaskEnded {
                task: id.to_owned(),
                outcome,
                traceparent: task.trace.traceparent(),
            },
        );
    }
}

async fn run_steps(ctx: Arc<Context>, id: String, token: (u64, u64), mcp: McpSlot) {
    let Some(task) = current(&ctx.shared, &id, token) else {
        return;
    };
    let manifest = match Manifest::parse(&task.manifest_json) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            // The state machine accepted it, so this node's build reads manifests differently.
            tracing::error!(task = %id, error = %e, "cannot read the task's manifest");
            return;
        }
    };
    let stubs = Arc::new(TaskStubs::of(&task));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut applied = Applied::new(&ctx.shared.raft);
    let mut steps: JoinSet<bool> = JoinSet::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    loop {
        let Some(task) = current(&ctx.shared, &id, token) else {
            let _ = stop_tx.send(true);
            return; // ended, cancelled or taken away: in-flight steps are dropped with `steps`
        };
        for step in ready(&manifest, &task) {
            if started.insert(step.id.clone()) {
                let job = StepJob {
                    ctx: ctx.clone(),
                    task: task.clone(),
                    token,
                    step: step.clone(),
                    stop: stop_rx.clone(),
                    mcp: mcp.clone(),
                    stubs: stubs.clone(),
                };
                steps.spawn(job.run());
            }
        }
        tokio::select! {
            Some(joined) = steps.join_next() => {
                if !joined.unwrap_or(false) {
                    let _ = stop_tx.send(true);
                    return; // its report was refused: the task is no longer ours
                }
            }
            _ = applied.next(POLL) => {}
        }
    }
}

struct StepJob {
    ctx: Arc<Context>,
    task: WorkTask,
    token: (u64, u64),
    step: Step,
    stop: watch::Receiver<bool>,
    mcp: McpSlot,
    stubs: Arc<Result<Option<TaskStubs>, String>>,
}

impl StepJob {
    fn update(&self, state: &str, attempt: u32) -> proto::StepUpdate {
        proto::StepUpdate {
            task: self.task.id.clone(),
            token: Some(proto::FencingToken {
                term: self.token.0,
                index: self.token.1,
            }),
            step: self.step.id.clone(),
            state: state.into(),
            attempt,
            ..Default::default()
        }
    }

    /// Commits `u`; false when the task is no longer this node's (stale) or the proposal was
    /// abandoned. `already_done` is a retry of a report that did commit.
    async fn report(&self, u: proto::StepUpdate) -> bool {
        let r = propose_until_answered(&self.ctx.shared, Op::StepUpdate(u), &self.stop).await;
        match r {
            Some(r) if r.applied || r.refusal == refusal::ALREADY_DONE => true,
            Some(r) => {
                tracing::info!(task = %self.task.id, step = %self.step.id, refusal = %r.refusal, message = %r.message, "step report refused");
                false
            }
            None => false,
        }
    }

    /// Runs the step with its retries and commits the outcome. Returns false if a report was
    /// refused (the runner then stops).
    async fn run(self) -> bool {
        let attempts = self.step.retries.saturating_add(1);
        let mut last = None;
        for attempt in 1..=attempts {
            if !self.report(self.update("running", attempt)).await {
                return false;
            }
            let timeout = Duration::from_millis(self.step.timeout_ms.max(1)) + TIMEOUT_GRACE;
            let began = std::time::Instant::now();
            let at = spans::Attempt {
                task: &self.task,
                step: &self.step,
                number: attempt,
                started: std::time::SystemTime::now(),
            };
            let (outcome, label) = match tokio::time::timeout(timeout, self.execute(&at)).await {
                Ok(Ok(output)) => (Ok(output), "succeeded"),
                Ok(Err(e)) => (Err(e), "failed"),
                Err(_) => (
                    Err(StepError {
                        code: "PA720",
                        message: format!("step timed out after {} ms", self.step.timeout_ms),
                        retryable: true,
                        output: None,
                    }),
                    "timed_out",
                ),
            };
            self.ctx.shared.metrics.step_duration.observe(
                format!(
                    "kind=\"{}\",outcome=\"{label}\"",
                    crate::metrics::esc(&self.step.kind)
                ),
                began.elapsed(),
            );
            at.export(&self.ctx.shared.telemetry, label, outcome.as_ref().err());
            match outcome {
                Ok(output) => {
                    let mut u = self.update("succeeded", attempt);
                    u.output_json = serde_json::to_vec(&output).unwrap_or_default();
                    return self.report(u).await;
                }
                Err(e) => {
                    let retry = e.retryable && attempt < attempts;
                    tracing::info!(task = %self.task.id, step = %self.step.id, attempt, code = e.code, error = %e.message, retry, "step failed");
                    last = Some(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        let e = last.unwrap_or_else(|| StepError::new("PA720", "no attempt ran"));
        let mut u = self.update("failed", attempts);
        u.error_code = e.code.into();
        u.error = e.message;
        if let Some(output) = &e.output {
            u.output_json = serde_json::to_vec(output).unwrap_or_default();
        }
        self.report(u).await
    }

    /// The step's input values, by binding name.
    fn inputs(&self) -> Result<BTreeMap<String, serde_json::Value>, StepError> {
        let task_inputs: serde_json::Value =
            serde_json::from_slice(&self.task.inputs_json).unwrap_or_default();
        let mut values = BTreeMap::new();
        for (name, binding) in &self.step.inputs {
            let value = match manifest::source(binding) {
                Some(Source::Input(n)) => task_inputs.get(n).cloned(),
                Some(Source::Step(sid)) => {
                    let st = read_state(&self.ctx.shared.state);
                    st.work
                        .tasks
                        .get(&self.task.id)
                        .and_then(|t| t.step(sid))
                        .and_then(|s| serde_json::from_slice(&s.output_json).ok())
                }
                None => None,
            };
            let value = value.ok_or_else(|| {
                StepError::new("PA727", format!("input {name:?} ({binding}) has no value"))
            })?;
            values.insert(name.clone(), value);
        }
        Ok(values)
    }

    async fn execute(&self, at: &spans::Attempt<'_>) -> Result<serde_json::Value, StepError> {
        let inputs = self.inputs()?;
        match self.step.kind.as_str() {
            "sandbox" => super::sandbox_step::run(&self.ctx, &self.task, &self.step, &inputs).await,
            "delegate" => self.delegate(inputs, at.number).await,
            "analyze-trace" => self.analyze_trace(&inputs),
            "mcp" => self.call_tool(inputs, at).await,
            "cort" => self.cort(&inputs, at).await,
            "verify" => self.verify(at.number).await,
            other => Err(StepError::new(
                "PA721",
                format!(
                    "step {:?} is of kind {other:?}, which this node does not run yet (it runs {:?})",
                    self.step.id,
                    manifest::RUNNABLE_KINDS
                ),
            )),
        }
    }
}

/// The resources a sandbox may use: the task's (its core's), or defaults for a core that
/// declares none.
pub fn sandbox_resources(r: &Resources) -> Resources {
    Resources {
        cpu_millis: if r.cpu_millis == 0 {
            1000
        } else {
            r.cpu_millis
        },
        memory_bytes: if r.memory_bytes == 0 {
            512 << 20
        } else {
            r.memory_bytes
        },
        gpu_memory_bytes: r.gpu_memory_bytes,
    }
}
