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

use super::manifest::{self, Manifest, Source, Step};
use super::propose::propose_until_answered;
use super::scenario::{Scenario, TaskStubs};
use super::{Resources, StepState, TaskState, WorkTask};
use crate::proto::{self, command::Op};
use crate::shared::Shared;
use crate::sm::{read_state, Raft};
use crate::state::refusal;
use crate::types::{LogId, TypeConfig};

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

fn release_all(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    // Step captures (files beside the workspaces) stay: committed traces name them.
    for entry in entries.flatten().filter(|e| e.path().is_dir()) {
        release_workspace(root, &entry.file_name().to_string_lossy());
    }
}

/// Where this node's task workspaces live: under the system's temp dir, not the data dir. The
/// sandbox runs commands as an unprivileged user who must be able to reach the workspace (bwrap
/// binds it as that user), and the data dir holds the node's key and may sit under private
/// folders. Each level is created by the daemon, searchable but not listable by others.
fn workspace_root(cfg: &crate::config::NodeConfig) -> PathBuf {
    std::env::temp_dir()
        .join("pyagent-work")
        .join(format!("{}-{}", cfg.swarm, cfg.node_id))
}

/// Where this node unpacks step images: beside the workspaces and for the same reason (bwrap
/// binds an image's root as the sandbox user). Both levels are made by [`make_searchable_dir`],
/// whose chmod fails on a directory someone else planted there first.
fn image_cache(cfg: &crate::config::NodeConfig) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("pyagent-images")
        .join(format!("{}-{}", cfg.swarm, cfg.node_id));
    for level in [dir.parent(), Some(dir.as_path())].into_iter().flatten() {
        if let Err(e) = make_searchable_dir(level) {
            tracing::error!(dir = %level.display(), error = %e, "image cache unusable: steps with an image will fail (PA728)");
        }
    }
    dir
}

fn make_searchable_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// Creates `root/<task>` (and `root`) searchable by the sandbox user, with a disk quota of
/// `quota` bytes where this node may mount a tmpfs there (as root: the local target); elsewhere
/// (an unprivileged pod) it is a plain directory and `Ok(false)` says the quota is not enforced.
pub fn task_workspace(
    root: &std::path::Path,
    task: &str,
    quota: u64,
) -> std::io::Result<(PathBuf, bool)> {
    if let Some(parent) = root.parent() {
        make_searchable_dir(parent)?;
    }
    make_searchable_dir(root)?;
    let dir = root.join(task);
    std::fs::create_dir_all(&dir)?;
    let quota_on = is_mount_point(&dir)? || mount_quota(&dir, quota);
    Ok((dir, quota_on))
}

fn is_mount_point(dir: &std::path::Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let parent = dir.parent().unwrap_or(dir);
    Ok(std::fs::metadata(dir)?.dev() != std::fs::metadata(parent)?.dev())
}

/// `mount -t tmpfs -o size=<quota>`: the util-linux command rather than the syscall, so that
/// the crate stays free of `unsafe`; false when the node may not mount (not root, no
/// CAP_SYS_ADMIN).
fn mount_quota(dir: &std::path::Path, quota: u64) -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={quota},mode=0700,nosuid,nodev"))
        .arg("pyagent-task")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// When a task leaves this node: its workspace is unmounted (if it was a tmpfs) and removed.
/// The step captures beside it stay until the next start (`pyagent down --purge` removes them).
fn release_workspace(root: &std::path::Path, task: &str) {
    let dir = root.join(task);
    if !dir.exists() {
        return;
    }
    if is_mount_point(&dir).unwrap_or(false) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status();
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a task's workspace");
    }
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
    run_steps(ctx, id, token, mcp.clone()).await;
    if let Some(sessions) = mcp.get() {
        sessions.shutdown().await;
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
            let outcome = match tokio::time::timeout(timeout, self.execute()).await {
                Ok(r) => r,
                Err(_) => Err(StepError {
                    code: "PA720",
                    message: format!("step timed out after {} ms", self.step.timeout_ms),
                    retryable: true,
                    output: None,
                }),
            };
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

    async fn execute(&self) -> Result<serde_json::Value, StepError> {
        let inputs = self.inputs()?;
        match self.step.kind.as_str() {
            "sandbox" => super::sandbox_step::run(&self.ctx, &self.task, &self.step, &inputs).await,
            "delegate" => self.delegate(inputs).await,
            "analyze-trace" => self.analyze_trace(&inputs),
            "mcp" => self.call_tool(inputs).await,
            "cort" => self.cort(&inputs).await,
            "verify" => self.verify().await,
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

    /// The report of the `trace` input (docs/analyze-trace.md). Capture files are read only
    /// from this node's own workspaces root, where its sandbox steps put them: a trace given as
    /// a task input cannot make the node read another file.
    fn analyze_trace(
        &self,
        inputs: &BTreeMap<String, serde_json::Value>,
    ) -> Result<serde_json::Value, StepError> {
        let trace = inputs.get("trace").ok_or_else(|| {
            StepError::new(
                "PA727",
                format!("step {:?} has no `trace` input to analyse", self.step.id),
            )
        })?;
        let workspace = self.ctx.workspaces.join(&self.task.id);
        let roots = [
            pyagent_sandbox::WORKSPACE,
            workspace.to_str().unwrap_or(pyagent_sandbox::WORKSPACE),
        ];
        let trace = trace.clone();
        let report = if captures_are_ours(&trace, &self.ctx.workspaces) {
            pyagent_trace::analyze_trace_with_captures(&trace, &roots)
        } else {
            pyagent_trace::analyze_trace(&trace, &roots)
        };
        Ok(report.to_json())
    }

    /// Calls the step's tool (`params.tool`: `<server>` or `<server>.<tool>`) of its core's MCP
    /// servers with `params.arguments` and the bound inputs over them (docs/mcp.md).
    async fn call_tool(
        &self,
        inputs: BTreeMap<String, serde_json::Value>,
    ) -> Result<serde_json::Value, StepError> {
        let work =
            self.ctx.work.as_ref().map_err(|e| {
                StepError::new("PA726", format!("the work file is unreadable: {e}"))
            })?;
        let servers = work
            .tools
            .get(&self.task.core)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let step_tool = self
            .step
            .params
            .get("tool")
            .and_then(|t| t.as_str())
            .unwrap_or("");
        if let Some(stubs) = self.stubs()? {
            // A scenario's task replays the results it was given; it never starts a server.
            return stubs.tool_result(step_tool).ok_or_else(|| {
                StepError::new(
                    "PA733",
                    format!("the scenario gives no (more) result for tool {step_tool:?}"),
                )
            });
        }
        let (server, tool) = pyagent_mcp::resolve(servers, step_tool).map_err(mcp_error)?;
        let given = self
            .step
            .params
            .get("arguments")
            .and_then(|a| a.as_object())
            .cloned()
            .unwrap_or_default();
        let bound: serde_json::Map<String, serde_json::Value> = inputs.into_iter().collect();
        let sessions = self
            .mcp
            .get_or_try_init(|| async {
                super::sandbox_step::mcp_sandbox(&self.ctx, &self.task, servers).map(|spec| {
                    pyagent_mcp::McpSessions::new(pyagent_mcp::SessionConfig::new(spec))
                })
            })
            .await?;
        sessions
            .call(server, tool, pyagent_mcp::arguments(&given, &bound))
            .await
            .map_err(mcp_error)
    }

    /// Chain-of-recursive-thoughts rounds with the core's model (docs/models.md): the step's
    /// `report` is the whole record (every prompt, answer, choice and token count).
    async fn cort(
        &self,
        inputs: &BTreeMap<String, serde_json::Value>,
    ) -> Result<serde_json::Value, StepError> {
        let params = &self.step.params;
        let count = |key: &str| {
            params
                .get(key)
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(3)
        };
        let settings = pyagent_model::CortSettings {
            rounds: count("rounds"),
            alternatives: count("alternatives"),
        };
        let prompt = params.get("prompt").and_then(|p| p.as_str());
        let task = pyagent_model::CortTask::from_inputs(prompt, inputs);
        let result = match self.stubs()? {
            // A scenario's task replays the answers it was given; it never asks a model.
            Some(stubs) => {
                let replay = stubs.model.get_or_init(|| {
                    let config = self.model_config().unwrap_or_else(|_| replay_config());
                    pyagent_model::Replay::new(config, stubs.model_answers.clone())
                });
                pyagent_model::cort(replay, &task, settings).await
            }
            None => pyagent_model::cort(&self.model_client()?, &task, settings).await,
        };
        match result {
            Ok(record) => Ok(serde_json::to_value(record).unwrap_or(serde_json::Value::Null)),
            Err(failure) => Err(StepError {
                code: failure.error.code(),
                message: format!(
                    "{} (after {} successful requests)",
                    failure.error, failure.partial.requests
                ),
                retryable: failure.error.is_transient(),
                output: None,
            }),
        }
    }

    /// The task's stubs when it is a scenario's (checked when its runner started).
    fn stubs(&self) -> Result<Option<&TaskStubs>, StepError> {
        match self.stubs.as_ref() {
            Ok(s) => Ok(s.as_ref()),
            Err(e) => Err(StepError::new("PA729", e.clone())),
        }
    }

    fn model_config(&self) -> Result<pyagent_model::ModelConfig, StepError> {
        let core = &self.task.core;
        let work =
            self.ctx.work.as_ref().map_err(|e| {
                StepError::new("PA726", format!("the work file is unreadable: {e}"))
            })?;
        let model = work.models.get(core).ok_or_else(|| {
            StepError::new(
                "PA740",
                format!(
                    "core {core:?} has no model in the work file (a `model:` with an endpoint)"
                ),
            )
        })?;
        model
            .config(|name| std::env::var(name).ok())
            .map_err(|e| StepError::new(e.code(), e.to_string()))
    }

    fn model_client(&self) -> Result<pyagent_model::ChatClient, StepError> {
        let core = &self.task.core;
        let mut clients = self
            .ctx
            .models
            .lock()
            .map_err(|_| StepError::new("PA740", "the model clients are poisoned"))?;
        if let Some(c) = clients.get(core) {
            return Ok(c.clone());
        }
        let client = pyagent_model::ChatClient::new(self.model_config()?);
        clients.insert(core.clone(), client.clone());
        Ok(client)
    }

    /// Hands the work to another manifest as a sub-task and waits for its outputs.
    async fn delegate(
        &self,
        inputs: BTreeMap<String, serde_json::Value>,
    ) -> Result<serde_json::Value, StepError> {
        let work = self.work_file()?;
        let core = self.step.core.clone().unwrap_or_default();
        let name = match &self.step.manifest {
            Some(n) => n.clone(),
            None => only_manifest_of(work, &core)?,
        };
        let inputs = serde_json::to_vec(&inputs).unwrap_or_default();
        let t = self.run_sub_task(work, &name, inputs, Vec::new()).await?;
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
    async fn verify(&self) -> Result<serde_json::Value, StepError> {
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
            .run_sub_task(work, &scenario.manifest, inputs, stubs)
            .await?;
        let verdict = super::scenario::verdict(scenario, &t);
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

    fn work_file(&self) -> Result<&WorkFile, StepError> {
        self.ctx
            .work
            .as_ref()
            .map_err(|e| StepError::new("PA726", format!("the work file is unreadable: {e}")))
    }

    /// Submits manifest `name` as the sub-task `<task>.<step>` (so a retry or a new owner finds
    /// the same one) and waits until it ends.
    async fn run_sub_task(
        &self,
        work: &WorkFile,
        name: &str,
        inputs_json: Vec<u8>,
        stubs_json: Vec<u8>,
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

/// The model settings a replaying task records when its core's model cannot be configured here.
fn replay_config() -> pyagent_model::ModelConfig {
    let endpoint =
        pyagent_model::Endpoint::parse("http://scenario.invalid/v1").expect("a valid constant URL");
    pyagent_model::ModelConfig::new("scenario-replay", endpoint)
}

fn mcp_error(e: pyagent_mcp::McpError) -> StepError {
    // A crashed or hung server is killed and forgotten: a retry starts it again.
    let retryable = matches!(e.code(), "PA734" | "PA736");
    StepError {
        code: e.code(),
        message: e.to_string(),
        retryable,
        output: None,
    }
}

/// Whether every capture file the trace names is in this node's workspaces root.
fn captures_are_ours(trace: &serde_json::Value, root: &std::path::Path) -> bool {
    let Some(streams) = trace.get("streams").and_then(|s| s.as_object()) else {
        return true;
    };
    streams
        .values()
        .all(|s| match s.get("file").and_then(|f| f.as_str()) {
            None => true,
            Some(f) => {
                let path = std::path::Path::new(f);
                !path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                    && path.starts_with(root)
            }
        })
}

fn only_manifest_of(work: &WorkFile, core: &str) -> Result<String, StepError> {
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
