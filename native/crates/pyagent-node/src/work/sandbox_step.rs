//! `sandbox` steps: the step's command in pyagent-sandbox (docs/sandbox.md), in the task's
//! workspace, with the task's core resources as limits, and its trace as the step's output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pyagent_sandbox::{IsolationLevel, KillReason, Limits, Outcome, SandboxSpec};

use super::executor::{sandbox_resources, Context, StepError};
use super::manifest::{self, Manifest, Source, Step};
use super::WorkTask;

/// Processes and threads a step may have at once (fork bombs stop here).
const PIDS: u32 = 256;
/// Of each of stdout and stderr, kept in the trace.
const OUTPUT_BYTES: usize = 1 << 20;
const TMP_BYTES: u64 = 64 << 20;
/// Of each stream, kept in the trace, which is Raft-committed and replicated to every node; the
/// whole capture stays on the owner's disk, named in the trace with its SHA-256 (which anyone can check).
const INLINE_BYTES: usize = 16 << 10;
/// The cgroup, under the daemon's own, that holds every step's cgroup.
const CGROUP_PARENT: &str = "pyagent-tasks";

/// The strongest isolation this host gives, by name (as the worker registers it).
pub fn isolation_level() -> String {
    let caps = pyagent_sandbox::probe();
    let level = if caps.namespaces {
        IsolationLevel::Namespaces
    } else if caps.landlock && caps.seccomp {
        IsolationLevel::LandlockSeccomp
    } else {
        IsolationLevel::LimitsOnly
    };
    level.as_str().to_string()
}

fn level(name: &str) -> IsolationLevel {
    match name {
        "namespaces" => IsolationLevel::Namespaces,
        "landlock_seccomp" => IsolationLevel::LandlockSeccomp,
        _ => IsolationLevel::LimitsOnly,
    }
}

/// A file name a step input may be written as: no path, nothing hidden.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `calc.py` → `CALC_PY`.
fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn as_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The names of the step's inputs bound to manifest inputs of type `file`: written as files.
fn file_inputs(task: &WorkTask, step: &Step) -> Vec<String> {
    let Ok(m) = Manifest::parse(&task.manifest_json) else {
        return Vec::new();
    };
    step.inputs
        .iter()
        .filter(|(_, binding)| {
            matches!(manifest::source(binding), Some(Source::Input(n)) if m.inputs.get(n).map(String::as_str) == Some("file"))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The disk quota of a task's workspace on this node.
fn workspace_quota(ctx: &Context) -> u64 {
    ctx.shared
        .cfg
        .work
        .as_ref()
        .map_or(256 << 20, |w| w.workspace_bytes)
}

/// A sandbox for one of `task`'s commands: its workspace, its core's resources, the node's
/// minimum isolation, the tasks' cgroup, the daemon as the exec helper; no network.
fn task_sandbox(
    ctx: &Context,
    task: &WorkTask,
    argv: Vec<String>,
    workspace: PathBuf,
    wall: Duration,
) -> SandboxSpec {
    let res = sandbox_resources(&task.resources);
    let mut spec = SandboxSpec::new(argv, workspace);
    spec.limits = Limits {
        wall,
        cpu_millis: u32::try_from(res.cpu_millis).unwrap_or(u32::MAX),
        memory_bytes: res.memory_bytes,
        pids: PIDS,
        output_bytes: OUTPUT_BYTES,
        tmp_bytes: TMP_BYTES,
    };
    spec.min_isolation = ctx
        .shared
        .cfg
        .work
        .as_ref()
        .map(|w| level(&w.min_isolation))
        .unwrap_or(IsolationLevel::Namespaces);
    spec.cgroup_parent = Some(CGROUP_PARENT.into());
    // The daemon's own binary is the exec helper (main.rs calls `main_if_invoked` first).
    spec.helper = std::env::current_exe().ok();
    spec
}

fn prepare_workspace(
    ctx: &Context,
    task: &WorkTask,
    step: &Step,
    inputs: &BTreeMap<String, serde_json::Value>,
) -> Result<(PathBuf, Option<u64>), StepError> {
    let quota = workspace_quota(ctx);
    let (dir, quota_on) = super::executor::task_workspace(&ctx.workspaces, &task.id, quota)
        .map_err(|e| {
            StepError::new(
                "PA722",
                format!("workspace {}: {e}", ctx.workspaces.join(&task.id).display()),
            )
        })?;
    for name in file_inputs(task, step) {
        if !plain_file_name(&name) {
            return Err(StepError::new(
                "PA727",
                format!(
                    "file input {name:?} is not a plain file name ([A-Za-z0-9._-], not hidden)"
                ),
            ));
        }
        let text = inputs.get(&name).map(as_text).unwrap_or_default();
        std::fs::write(dir.join(&name), text)
            .map_err(|e| StepError::new("PA722", format!("workspace file {name}: {e}")))?;
    }
    Ok((dir, quota_on.then_some(quota)))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One stream in the trace: its head inline, the whole capture on disk beside the workspace.
fn stream(bytes: &[u8], truncated: bool, file: &std::path::Path) -> serde_json::Value {
    let kept_on_disk = bytes.len() > INLINE_BYTES && std::fs::write(file, bytes).is_ok();
    let head = &bytes[..bytes.len().min(INLINE_BYTES)];
    serde_json::json!({
        "text": String::from_utf8_lossy(head),
        "bytes": bytes.len(),
        "sha256": sha256_hex(bytes),
        "inlineTruncated": bytes.len() > INLINE_BYTES,
        "captureTruncated": truncated,
        "file": kept_on_disk.then(|| file.display().to_string()),
    })
}

fn trace(
    o: &Outcome,
    argv: &[String],
    captures: &std::path::Path,
    quota: Option<u64>,
) -> serde_json::Value {
    let out = stream(
        &o.stdout,
        o.stdout_truncated,
        &captures.with_extension("stdout"),
    );
    let err = stream(
        &o.stderr,
        o.stderr_truncated,
        &captures.with_extension("stderr"),
    );
    serde_json::json!({
        "command": argv,
        "exitCode": o.exit_code,
        "signal": o.signal,
        "stdout": out["text"],
        "stderr": err["text"],
        "stdoutTruncated": o.stdout_truncated || o.stdout.len() > INLINE_BYTES,
        "stderrTruncated": o.stderr_truncated || o.stderr.len() > INLINE_BYTES,
        "streams": {"stdout": out, "stderr": err},
        "killed": o.killed.map(|k| match k { KillReason::WallClock => "wall_clock", KillReason::Memory => "memory" }),
        "pidsLimitHit": o.pids_limit_hit,
        "isolation": o.isolation.as_str(),
        "landlock": o.landlock,
        "cgroupLimits": o.cgroup_limits,
        "elapsedMs": o.elapsed.as_millis() as u64,
        // null: this node may not mount the workspace's tmpfs, so its size is not capped.
        "workspaceQuotaBytes": quota,
    })
}

/// Runs the step's command. A command that runs and exits, with any code, is a trace (a
/// failing test reproduced is what a sandbox step is for); one killed at its wall-clock or
/// memory limit, or a sandbox that cannot start, is a failed step.
/// The sandbox a task's MCP servers run in: the task's workspace, its core's resources, the
/// node's minimum isolation, no network; a server installed outside the system dirs (an
/// absolute command such as `/opt/tools/venv/bin/server`) gets its install dir read-only (the
/// folder above `bin/`, where a virtualenv keeps its libraries).
pub fn mcp_sandbox(
    ctx: &Context,
    task: &WorkTask,
    servers: &[pyagent_mcp::ToolServer],
) -> Result<SandboxSpec, StepError> {
    let (workspace, _) =
        super::executor::task_workspace(&ctx.workspaces, &task.id, workspace_quota(ctx))
            .map_err(|e| StepError::new("PA731", format!("the task's workspace: {e}")))?;
    // A server lives as long as its task, not a step: no wall clock of its own.
    let day = Duration::from_secs(24 * 3600);
    let mut spec = task_sandbox(ctx, task, vec!["mcp-server".into()], workspace, day);
    spec.read_only = servers.iter().filter_map(install_dir).collect();
    spec.read_only.sort();
    spec.read_only.dedup();
    Ok(spec)
}

const SYSTEM_PREFIXES: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"];

fn install_dir(server: &pyagent_mcp::ToolServer) -> Option<PathBuf> {
    let named = PathBuf::from(server.command.first()?);
    if !named.is_absolute() || SYSTEM_PREFIXES.iter().any(|p| named.starts_with(p)) {
        return None; // found on the sandbox's PATH, under the system dirs it mounts
    }
    let dir = named.parent()?;
    let root = if dir.file_name().is_some_and(|n| n == "bin") {
        dir.parent()?
    } else {
        dir
    };
    std::fs::canonicalize(root).ok()
}

/// The root file system of a step's image, unpacked on first use (off the async threads).
async fn image_root(ctx: &Context, image: &str) -> Result<PathBuf, StepError> {
    let Some(store) = ctx.images.clone() else {
        return Err(StepError::new(
            "PA728",
            format!(
                "the step runs in image {image:?}, and this node has no image layout (node.json work.imageLayout)"
            ),
        ));
    };
    let reference = image.to_string();
    tokio::task::spawn_blocking(move || store.rootfs(&reference))
        .await
        .map_err(|e| StepError::new("PA728", format!("unpacking image {image:?}: {e}")))?
        .map_err(|e| StepError::new("PA728", format!("image {image:?}: {e}")))
}

pub async fn run(
    ctx: &Context,
    task: &WorkTask,
    step: &Step,
    inputs: &BTreeMap<String, serde_json::Value>,
) -> Result<serde_json::Value, StepError> {
    let argv = step.command.clone().unwrap_or_default();
    if argv.is_empty() {
        return Err(StepError::new(
            "PA720",
            format!("step {:?} has no command", step.id),
        ));
    }
    let (workspace, quota) = prepare_workspace(ctx, task, step, inputs)?;
    let mut env: Vec<(String, String)> = inputs
        .iter()
        .map(|(name, value)| (env_name(name), as_text(value)))
        .collect();
    env.push(("PYAGENT_TASK".into(), task.id.clone()));
    env.push(("PYAGENT_STEP".into(), step.id.clone()));
    let wall = Duration::from_millis(step.timeout_ms.max(1));
    let mut spec = task_sandbox(ctx, task, argv.clone(), workspace, wall);
    spec.env = env;
    spec.network = step.network;
    spec.root = match &step.image {
        Some(image) => Some(image_root(ctx, image).await?),
        None => None,
    };
    let cancelled = CountIfDropped {
        metrics: &ctx.shared.metrics,
        armed: true,
    };
    let outcome = pyagent_sandbox::run(&spec).await;
    cancelled.disarm();
    let outcome = outcome
        .map_err(|e| StepError::new("PA722", format!("{}: {e} (hint: {})", e.code(), e.hint())))?;
    if let Some(k) = outcome.killed {
        ctx.shared.metrics.sandbox_killed(match k {
            KillReason::WallClock => "wall_clock",
            KillReason::Memory => "memory",
        });
    }
    match outcome.killed {
        // Beside the workspace, not in it: the command cannot alter its own record.
        None => Ok(trace(
            &outcome,
            &argv,
            &ctx.workspaces.join(format!("{}.{}", task.id, step.id)),
            quota,
        )),
        Some(KillReason::WallClock) => Err(StepError {
            code: "PA720",
            message: format!("killed at its wall-clock limit of {} ms", step.timeout_ms),
            retryable: true,
            output: None,
        }),
        Some(KillReason::Memory) => Err(StepError {
            code: "PA720",
            message: format!(
                "killed at its memory limit of {} bytes",
                spec.limits.memory_bytes
            ),
            retryable: true,
            output: None,
        }),
    }
}

/// Counts a sandbox killed because its run was dropped (the task cancelled or taken away, the
/// step's own timeout in the executor): dropping the run's future kills its process tree.
struct CountIfDropped<'a> {
    metrics: &'a crate::metrics::Metrics,
    armed: bool,
}

impl CountIfDropped<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CountIfDropped<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.metrics.sandbox_killed("cancelled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_names_become_env_names_and_only_plain_files() {
        assert_eq!(env_name("calc.py"), "CALC_PY");
        assert!(plain_file_name("test_calc.py"));
        for bad in ["../x", ".env", "a/b", ""] {
            assert!(!plain_file_name(bad), "{bad}");
        }
    }
}
