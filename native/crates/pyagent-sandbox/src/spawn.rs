//! A long-lived command on the caller's pipes: an MCP server, say, which the caller talks to over
//! stdin and stdout for as long as it needs, under the same walls as [`crate::run`].
//!
//! The difference from a run is only in the plumbing: stdin and stdout are the command's, so
//! the helper reports on stderr (behind [`STDERR_STATUS_PREFIX`], before the command starts).
//! And the command dies with the daemon even when the daemon is killed with -9: the helper stays
//! beside bwrap (or, without namespaces, beside the command), watching the daemon's pidfd, and
//! kills its process group when the daemon exits; with namespaces that takes bwrap and so its
//! pid namespace, every descendant included. (Without namespaces, a descendant that left the
//! group with `setsid` is caught by the cgroup: killed on drop, and by [`crate::reap_orphans`]
//! at the next start after a crash.)

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::error::SandboxError;
use crate::plan::{Status, HELPER_ARG, PLAN_ENV, STDERR_STATUS_PREFIX};
use crate::run::{prepare, refuses_namespaces, setup, Attempt, Cleanup, Failure};
use crate::spec::{IsolationLevel, SandboxSpec};

/// How much of the command's stderr is kept (the end of it): enough for a traceback.
const STDERR_TAIL: usize = 16 << 10;
/// Longest line read while waiting for the helper's status (bwrap's and the helper's lines are
/// short).
const STATUS_LINE_CAP: u64 = 64 << 10;

/// A sandboxed command started by [`spawn`], with its stdin and stdout piped to the caller.
///
/// Dropping it kills the command's whole tree (its cgroup, or its process group) and removes its
/// cgroup and temp dir; the drop blocks briefly while the kernel reaps them. [`Limits::wall`] is
/// not enforced: the owner decides how long the command lives.
///
/// [`Limits::wall`]: crate::Limits::wall
pub struct SandboxedChild {
    /// The command's stdin; take it to talk to the command.
    pub stdin: Option<ChildStdin>,
    /// The command's stdout; take it to listen to the command.
    pub stdout: Option<ChildStdout>,
    /// The isolation the command got (never more than this).
    pub isolation: IsolationLevel,
    /// Whether Landlock was fully enforced.
    pub landlock: bool,
    /// Whether the cgroup limits (memory, CPU, pids) apply.
    pub cgroup_limits: bool,
    /// Why `isolation` is below [`SandboxSpec::max_isolation`], when it is.
    pub fallback_reason: Option<String>,
    child: Child,
    stderr: Arc<Mutex<Tail>>,
    /// The task reading stderr into `stderr`; it ends at the end of stderr.
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
    cleanup: Option<Cleanup>,
}

impl std::fmt::Debug for SandboxedChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxedChild")
            .field("pid", &self.child.id())
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
}

impl SandboxedChild {
    /// The helper's pid on the host (the command's, or bwrap's with namespaces), while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The last 16 KiB of what the command wrote to stderr, lossily decoded.
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
            .unwrap_or_default()
    }

    /// The whole of [`SandboxedChild::stderr_tail`] once the command has exited: what it wrote
    /// last may still be in the pipe when its exit is seen, so this waits (up to `limit`) for the
    /// end of stderr first.
    pub async fn stderr_tail_at_exit(&mut self, limit: std::time::Duration) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = tokio::time::timeout(limit, reader).await;
        }
        self.stderr_tail()
    }

    /// Waits for the command to exit (with namespaces, bwrap's exit status is the command's).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Whether the command has exited, without waiting.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Kills the whole tree now and removes the cgroup, off the async threads.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        if let Some(cleanup) = self.cleanup.take() {
            let _ = tokio::task::spawn_blocking(move || drop(cleanup)).await;
        }
        let _ = self.child.wait().await;
    }
}

/// The end of a stream, at most [`STDERR_TAIL`] bytes.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > STDERR_TAIL {
            let cut = self.bytes.len() - STDERR_TAIL;
            self.bytes.drain(..cut);
        }
    }
}

/// Starts `spec.argv` isolated as [`crate::run`] would, but returns as soon as the command
/// starts, with its stdin and stdout piped to the caller. Errors are those of [`crate::run`]; a
/// command that does not exist is not an error here either: it exits 127 (see
/// [`SandboxedChild::stderr_tail`] for why).
///
/// Cancel by dropping the future: nothing is left behind.
pub async fn spawn(spec: &SandboxSpec) -> Result<SandboxedChild, SandboxError> {
    let spec = &crate::run::with_root_minimum(spec);
    let mut p = prepare(spec).await?;
    loop {
        match attempt(p.attempt(spec)).await {
            Err(Failure::NoNamespaces(why)) => p.fall_back(spec, why)?,
            Err(Failure::Failed(e)) => return Err(e),
            Ok(mut child) => {
                child.fallback_reason = p.fallback_reason;
                return Ok(child);
            }
        }
    }
}

async fn attempt(a: Attempt<'_>) -> Result<SandboxedChild, Failure> {
    let (mut cleanup, plan_json) = setup(&a, true)?;
    let mut cmd = Command::new(a.helper);
    cmd.arg(HELPER_ARG)
        .env_clear()
        .env(PLAN_ENV, plan_json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::Spawn(format!("{}: {e}", a.helper.display())))?;
    cleanup.pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let Some(stderr) = child.stderr.take() else {
        return Err(SandboxError::Spawn("no stderr pipe".into()).into());
    };
    let mut stderr = BufReader::new(stderr);
    let (ready, before) = read_status(&mut stderr).await?;
    let Some(landlock_full) = ready else {
        let exit = child.wait().await.map_err(SandboxError::Io)?;
        return Err(failed_before_start(
            a.level == IsolationLevel::Namespaces,
            &before,
            exit,
        ));
    };
    let tail = Arc::new(Mutex::new(Tail::default()));
    let stderr_reader = tokio::spawn(drain(stderr, tail.clone()));
    Ok(SandboxedChild {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        isolation: a.level,
        // The helper refuses to go on below `level` (require_landlock), so `level` is what runs.
        landlock: a.level > IsolationLevel::LimitsOnly && landlock_full,
        cgroup_limits: cleanup.cgroup.is_some(),
        fallback_reason: None,
        child,
        stderr: tail,
        stderr_reader: Some(stderr_reader),
        cleanup: Some(cleanup),
    })
}

/// Reads stderr up to the helper's `ready` line: `Some(landlock_full)`, or `None` at the end of
/// stderr, with what came before (bwrap's or the helper's complaints).
async fn read_status(
    stderr: &mut BufReader<ChildStderr>,
) -> Result<(Option<bool>, String), Failure> {
    let mut before = String::new();
    loop {
        let mut line = Vec::new();
        let n = (&mut *stderr)
            .take(STATUS_LINE_CAP)
            .read_until(b'\n', &mut line)
            .await
            .map_err(SandboxError::Io)?;
        if n == 0 {
            return Ok((None, before));
        }
        let text = String::from_utf8_lossy(&line);
        let Some(json) = text.strip_prefix(STDERR_STATUS_PREFIX) else {
            before.push_str(&text);
            continue;
        };
        match serde_json::from_str::<Status>(json.trim_end()) {
            Ok(Status::Ready { landlock_full, .. }) => return Ok((Some(landlock_full), before)),
            Ok(Status::Error { code, message }) => {
                return Err(SandboxError::Setup { code, message }.into())
            }
            Ok(Status::Exit { .. }) | Err(_) => before.push_str(&text),
        }
    }
}

/// The helper or bwrap ended before the command started: why, as [`crate::run`] would say it.
fn failed_before_start(namespaces: bool, stderr: &str, exit: ExitStatus) -> Failure {
    let stderr = stderr.trim().to_string();
    if namespaces && refuses_namespaces(&stderr) {
        return Failure::NoNamespaces(stderr);
    }
    if namespaces && stderr.starts_with("bwrap:") {
        return Failure::Failed(SandboxError::Setup {
            code: "sandbox.bwrap".into(),
            message: stderr,
        });
    }
    Failure::Failed(SandboxError::Setup {
        code: "sandbox.helper".into(),
        message: format!("the exec helper ended ({exit}) before starting the command: {stderr}"),
    })
}

/// Keeps the command's stderr flowing (a full pipe would block it) and its end for errors.
async fn drain(mut stderr: BufReader<ChildStderr>, tail: Arc<Mutex<Tail>>) {
    let mut buf = vec![0u8; 8 << 10];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut t) = tail.lock() {
            t.push(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_end() {
        let mut t = Tail::default();
        t.push(&vec![b'a'; STDERR_TAIL]);
        t.push(b"the end");
        assert_eq!(t.bytes.len(), STDERR_TAIL);
        assert!(t.bytes.ends_with(b"aathe end"));
    }
}
