//! One run, from the spec to the outcome: choose the level, prepare the workspace and cgroup,
//! start the helper, capture output under caps, enforce the wall clock, clean up.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::bwrap::{self, BwrapRun};
use crate::capture::{read_capped, Captured};
use crate::cgroup::RunCgroup;
use crate::error::SandboxError;
use crate::plan::{Bwrap, Confine, Plan, Status, HELPER_ARG, PLAN_ENV, PLAN_VERSION};
use crate::probe::{find_bwrap, probe};
use crate::spec::{IsolationLevel, KillReason, Outcome, SandboxSpec, WORKSPACE};

/// The user of a root daemon's commands.
const NOBODY: (u32, u32) = (65534, 65534);
/// How long output may still arrive after the command ended and leftovers were killed.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// The helper reports a handful of short lines; anything beyond is not from the helper.
const STATUS_CAP: usize = 64 << 10;
const HELPER_FAILED: i32 = 125;

/// Users for whom bwrap failed to create namespaces in this process: later runs fall back at
/// once instead of failing the same way again.
static NO_NAMESPACES: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

fn namespaces_refused(uid: u32) -> bool {
    NO_NAMESPACES
        .lock()
        .map(|s| s.as_ref().is_some_and(|s| s.contains(&uid)))
        .unwrap_or(false)
}

fn remember_refusal(uid: u32) {
    if let Ok(mut s) = NO_NAMESPACES.lock() {
        s.get_or_insert_with(HashSet::new).insert(uid);
    }
}

/// Runs `spec.argv` isolated and waits for it. See the crate docs for the walls of each level.
///
/// Cancel by dropping the future: the guard it owns kills the whole process tree (the cgroup,
/// or the process group when there is none) and removes the run's cgroup and temp dir, so a
/// cancelled task leaves nothing behind. The drop blocks briefly (milliseconds) while the
/// kernel reaps the killed processes.
pub async fn run(spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
    let spec = &with_root_minimum(spec);
    let mut p = prepare(spec).await?;
    loop {
        match attempt(p.attempt(spec)).await {
            Err(Failure::NoNamespaces(why)) => p.fall_back(spec, why)?,
            Err(Failure::Failed(e)) => return Err(e),
            Ok(mut outcome) => {
                outcome.fallback_reason = p.fallback_reason;
                return Ok(outcome);
            }
        }
    }
}

/// A run in an image's root never goes below namespaces: without a mount namespace the command
/// would see the host's root, not the image's.
pub(crate) fn with_root_minimum(spec: &SandboxSpec) -> std::borrow::Cow<'_, SandboxSpec> {
    if spec.root.is_some() && spec.min_isolation < IsolationLevel::Namespaces {
        std::borrow::Cow::Owned(SandboxSpec {
            min_isolation: IsolationLevel::Namespaces,
            ..spec.clone()
        })
    } else {
        std::borrow::Cow::Borrowed(spec)
    }
}

/// What bwrap needs to run in `dir` (an image's root file system).
fn image_root(dir: &Path, helper: &Path) -> Result<bwrap::ImageRoot, SandboxError> {
    let bad = |m: String| SandboxError::InvalidSpec(format!("root {}: {m}", dir.display()));
    let dir = std::fs::canonicalize(dir).map_err(|e| bad(e.to_string()))?;
    if !dir.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let entries = bwrap::image_root_args(&dir).map_err(|e| bad(e.to_string()))?;
    let host_runtime = crate::elf::host_runtime(helper)?;
    Ok(bwrap::ImageRoot {
        host_runtime,
        entries,
    })
}

/// What every attempt of one run shares: checked, resolved, and the workspace given to the user.
pub(crate) struct Prepared {
    workspace: PathBuf,
    root: Option<bwrap::ImageRoot>,
    helper: PathBuf,
    run_as: (u32, u32),
    pub(crate) level: IsolationLevel,
    pub(crate) fallback_reason: Option<String>,
}

impl Prepared {
    pub(crate) fn attempt<'a>(&'a self, spec: &'a SandboxSpec) -> Attempt<'a> {
        Attempt {
            spec,
            root: self.root.as_ref(),
            level: self.level,
            workspace: &self.workspace,
            helper: &self.helper,
            run_as: self.run_as,
        }
    }

    /// bwrap could not create namespaces: remember it, and go one level down if allowed.
    pub(crate) fn fall_back(
        &mut self,
        spec: &SandboxSpec,
        why: String,
    ) -> Result<(), SandboxError> {
        remember_refusal(self.run_as.0);
        let next = fallback_below_namespaces();
        if next < spec.min_isolation {
            return Err(SandboxError::IsolationBelowMinimum {
                required: spec.min_isolation,
                got: next,
                why: format!("bwrap could not create namespaces: {why}"),
            });
        }
        self.fallback_reason = Some(why);
        self.level = next;
        Ok(())
    }
}

pub(crate) async fn prepare(spec: &SandboxSpec) -> Result<Prepared, SandboxError> {
    validate(spec)?;
    let workspace =
        std::fs::canonicalize(&spec.workspace).map_err(|e| SandboxError::Workspace {
            path: spec.workspace.clone(),
            message: e.to_string(),
        })?;
    if !workspace.is_dir() {
        return Err(SandboxError::Workspace {
            path: workspace,
            message: "not a directory".into(),
        });
    }
    check_workspace_place(&workspace)?;
    check_read_only(spec, &workspace)?;
    let helper = resolve_helper(spec)?;
    let root = spec
        .root
        .as_deref()
        .map(|r| image_root(r, &helper))
        .transpose()?;
    let run_as = resolve_run_as(spec)?;
    let (level, fallback_reason) = choose_level(spec, run_as.0)?;
    if run_as.0 != rustix::process::geteuid().as_raw() {
        // A big workspace takes a while: off the async threads.
        let ws = workspace.clone();
        tokio::task::spawn_blocking(move || chown_tree(&ws, run_as))
            .await
            .map_err(|e| SandboxError::Io(std::io::Error::other(e)))??;
    }
    Ok(Prepared {
        workspace,
        root,
        helper,
        run_as,
        level,
        fallback_reason,
    })
}

/// The read-only paths: absolute, existing, and neither the workspace nor above it (which
/// would bind the workspace read-only over itself, or show its neighbours).
fn check_read_only(spec: &SandboxSpec, workspace: &Path) -> Result<(), SandboxError> {
    for path in &spec.read_only {
        let bad = |why: &str| {
            Err(SandboxError::InvalidSpec(format!(
                "read_only path {}: {why}",
                path.display()
            )))
        };
        if !path.is_absolute() || path.to_str().is_none_or(|p| p.contains('\0')) {
            return bad("must be an absolute UTF-8 path");
        }
        let Ok(real) = std::fs::canonicalize(path) else {
            return bad("does not exist");
        };
        if real != *path {
            return bad("must be canonical (no symlinks, `.` or `..`)");
        }
        if workspace.starts_with(&real) || real.starts_with(workspace) {
            return bad("must not be, hold or lie in the workspace");
        }
    }
    Ok(())
}

fn validate(spec: &SandboxSpec) -> Result<(), SandboxError> {
    let bad = |m: &str| Err(SandboxError::InvalidSpec(m.to_string()));
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return bad("argv is empty");
    }
    let has_nul = |s: &str| s.contains('\0');
    if spec.argv.iter().any(|a| has_nul(a))
        || spec
            .env
            .iter()
            .any(|(k, v)| has_nul(k) || has_nul(v) || k.is_empty() || k.contains('='))
    {
        return bad(
            "argv and env must not contain NUL bytes; env names must be non-empty and without `=`",
        );
    }
    let l = &spec.limits;
    if l.wall.is_zero()
        || l.cpu_millis == 0
        || l.memory_bytes == 0
        || l.pids == 0
        || l.tmp_bytes == 0
    {
        return bad(
            "every limit must be non-zero (wall, cpu_millis, memory_bytes, pids, tmp_bytes)",
        );
    }
    if spec.min_isolation > spec.max_isolation {
        return Err(SandboxError::InvalidSpec(format!(
            "min_isolation {} is above max_isolation {}",
            spec.min_isolation, spec.max_isolation
        )));
    }
    if let Some(parent) = &spec.cgroup_parent {
        crate::cgroup::check_parent(parent).map_err(SandboxError::InvalidSpec)?;
    }
    if spec.run_as.is_some_and(|(uid, _)| uid == 0) {
        return bad("run_as must not be root: commands never run as root");
    }
    Ok(())
}

/// The workspace is given to the sandbox user and bound read-write: it must be a dedicated
/// directory, never `/`, a top-level directory (`/tmp`, `/home`), a system dir or anything
/// holding one. A mistake here would hand the host to the command.
fn check_workspace_place(workspace: &Path) -> Result<(), SandboxError> {
    let refuse = |why: &str| {
        Err(SandboxError::Workspace {
            path: workspace.to_path_buf(),
            message: why.to_string(),
        })
    };
    if workspace.to_str().is_none() {
        return refuse("the path is not UTF-8");
    }
    if workspace.components().count() < 3 {
        return refuse("a workspace must be a dedicated directory at least two levels below /");
    }
    let system = bwrap::SYSTEM_DIRS
        .iter()
        .chain(&["/proc", "/sys", "/dev", "/boot", "/run"]);
    for dir in system {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| PathBuf::from(dir));
        if workspace.starts_with(&dir) {
            return refuse(&format!("a workspace must not be inside {}", dir.display()));
        }
    }
    Ok(())
}

fn resolve_helper(spec: &SandboxSpec) -> Result<PathBuf, SandboxError> {
    const NAME: &str = "pyagent-sandbox-exec";
    let candidates: Vec<PathBuf> = match (&spec.helper, std::env::var_os("PYAGENT_SANDBOX_EXEC")) {
        (Some(p), _) => vec![p.clone()],
        (None, Some(p)) => vec![PathBuf::from(p)],
        (None, None) => {
            let exe = std::env::current_exe()?;
            let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut v = vec![dir.join(NAME)];
            if let Some(up) = dir.parent() {
                v.push(up.join(NAME));
            }
            v
        }
    };
    for c in &candidates {
        if c.is_file() {
            return std::fs::canonicalize(c).map_err(SandboxError::Io);
        }
    }
    Err(SandboxError::HelperMissing {
        path: candidates.into_iter().next().unwrap_or_default(),
    })
}

fn resolve_run_as(spec: &SandboxSpec) -> Result<(u32, u32), SandboxError> {
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    match spec.run_as {
        Some(ids) if euid == 0 || ids == (euid, egid) => Ok(ids),
        Some(ids) => Err(SandboxError::InvalidSpec(format!(
            "run_as {ids:?} needs a root daemon (this one runs as {euid}:{egid})"
        ))),
        None if euid == 0 => Ok(NOBODY),
        None => Ok((euid, egid)),
    }
}

/// The level below namespaces on this host.
fn fallback_below_namespaces() -> IsolationLevel {
    let caps = probe();
    if caps.landlock && caps.seccomp {
        IsolationLevel::LandlockSeccomp
    } else {
        IsolationLevel::LimitsOnly
    }
}

/// The level to try first, and why it is below `max_isolation` if it is.
fn choose_level(
    spec: &SandboxSpec,
    uid: u32,
) -> Result<(IsolationLevel, Option<String>), SandboxError> {
    let caps = probe();
    let want = spec.max_isolation;
    if want == IsolationLevel::Namespaces && caps.bwrap.is_none() {
        return Err(SandboxError::ToolMissing);
    }
    let (got, why) = if want == IsolationLevel::Namespaces
        && caps.namespaces
        && caps.seccomp
        && !namespaces_refused(uid)
    {
        (IsolationLevel::Namespaces, String::new())
    } else {
        let below = fallback_below_namespaces().min(want);
        let why = if want == IsolationLevel::Namespaces {
            match (&caps.namespaces_error, caps.seccomp) {
                (Some(e), _) => format!("bwrap could not create namespaces: {e}"),
                (None, false) => "this kernel has no seccomp filters".to_string(),
                (None, true) => format!("bwrap could not create namespaces for uid {uid} earlier"),
            }
        } else if below < want {
            "Landlock or seccomp is not available in this kernel".to_string()
        } else {
            String::new()
        };
        (below, why)
    };
    if got < spec.min_isolation {
        return Err(SandboxError::IsolationBelowMinimum {
            required: spec.min_isolation,
            got,
            why,
        });
    }
    Ok((got, (!why.is_empty()).then_some(why)))
}

/// Gives the workspace to the sandbox user (the daemon made it as itself).
///
/// The tree may hold what earlier runs left, so the walk trusts none of it: directories are
/// opened relative to their parent's descriptor with O_NOFOLLOW (a directory swapped for a
/// symlink mid-walk is not followed out of the workspace), entries are chowned without following
/// symlinks, and a regular file with more than one link is left alone (a hard link could be a
/// file from outside; normally the kernel's protected_hardlinks, bind mounts and Landlock stop
/// such links from being made at all).
fn chown_tree(root: &Path, (uid, gid): (u32, u32)) -> Result<(), SandboxError> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let fail = |what: &dyn std::fmt::Display, e: rustix::io::Errno| SandboxError::Workspace {
        path: root.to_path_buf(),
        message: format!("chown to {uid}:{gid} ({what}): {e}"),
    };
    let (u, g) = (
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let top = rustix::fs::open(root, dir_flags, Mode::empty()).map_err(|e| fail(&"open", e))?;
    rustix::fs::fchown(&top, u, g).map_err(|e| fail(&"the workspace", e))?;
    let mut stack = vec![top];
    while let Some(dir) = stack.pop() {
        for entry in rustix::fs::Dir::read_from(&dir).map_err(|e| fail(&"read", e))? {
            let entry = entry.map_err(|e| fail(&"read", e))?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let shown = name.to_string_lossy();
            let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Gone since the listing: nothing to give.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(fail(&shown, e)),
            };
            let file_type = FileType::from_raw_mode(st.st_mode);
            let owned = st.st_uid == uid && st.st_gid == gid;
            let foreign_link = file_type == FileType::RegularFile && st.st_nlink > 1;
            if !owned && !foreign_link {
                rustix::fs::chownat(&dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fail(&shown, e))?;
            }
            if file_type == FileType::Directory {
                match rustix::fs::openat(&dir, name, dir_flags, Mode::empty()) {
                    Ok(sub) => stack.push(sub),
                    // Replaced by a symlink or a file since the stat: not ours to follow.
                    Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {}
                    Err(e) => return Err(fail(&shown, e)),
                }
            }
        }
    }
    Ok(())
}

fn run_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "run-{}-{}-{nanos:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) enum Failure {
    /// bwrap failed before the helper ran inside: the caller may fall back.
    NoNamespaces(String),
    Failed(SandboxError),
}

impl From<SandboxError> for Failure {
    fn from(e: SandboxError) -> Self {
        Failure::Failed(e)
    }
}

/// Kills the run's process tree and removes what the run made, also when the future is dropped.
pub(crate) struct Cleanup {
    pub(crate) cgroup: Option<RunCgroup>,
    /// The helper's process group, while the helper is not yet reaped.
    pub(crate) pgid: Option<i32>,
    tmp: Option<PathBuf>,
}

impl Cleanup {
    pub(crate) fn kill_tree(&self) {
        if let Some(pgid) = self.pgid.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        if let Some(cg) = &self.cgroup {
            cg.kill_all(Duration::ZERO);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.kill_tree();
        drop(self.cgroup.take());
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_dir_all(tmp);
        }
    }
}

/// The helper's plan for one attempt: the command's environment, what Landlock grants, and
/// (with namespaces) bwrap's command line.
fn plan(
    a: &Attempt<'_>,
    ws_inside: &Path,
    tmp_inside: &Path,
    cgroup_procs: Vec<PathBuf>,
    stdio: bool,
) -> Result<Plan, SandboxError> {
    let Attempt {
        spec,
        root,
        level,
        workspace,
        helper,
        run_as,
    } = *a;
    let namespaces = level == IsolationLevel::Namespaces;
    let ws_str = ws_inside.to_string_lossy().into_owned();
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOME".to_string(), ws_str.clone()),
        (
            "TMPDIR".to_string(),
            tmp_inside.to_string_lossy().into_owned(),
        ),
        ("PYAGENT_WORKSPACE".to_string(), ws_str),
    ];
    env.retain(|(k, _)| !spec.env.iter().any(|(k2, _)| k2 == k));
    env.extend(spec.env.iter().cloned());

    let dev_files = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
    ];
    let confine = Confine {
        argv: spec.argv.clone(),
        env,
        cwd: ws_inside.to_path_buf(),
        read: if namespaces {
            // Inside, / holds only what bwrap mounted.
            vec![PathBuf::from("/")]
        } else {
            bwrap::SYSTEM_DIRS
                .iter()
                .chain(&["/proc", "/dev"])
                .map(PathBuf::from)
                .chain(spec.read_only.iter().cloned())
                .collect()
        },
        read_write: if namespaces {
            // bwrap's /dev is a private tmpfs, so its /dev/shm is the run's own.
            vec![
                ws_inside.to_path_buf(),
                tmp_inside.to_path_buf(),
                PathBuf::from("/dev/shm"),
            ]
        } else {
            vec![ws_inside.to_path_buf(), tmp_inside.to_path_buf()]
        },
        rw_files: dev_files.iter().map(PathBuf::from).collect(),
        network: spec.network,
        require_landlock: level >= IsolationLevel::LandlockSeccomp,
    };
    let bwrap = if namespaces {
        let program = find_bwrap().ok_or(SandboxError::ToolMissing)?;
        Some(Bwrap {
            program,
            args: bwrap::args(&BwrapRun {
                root,
                workspace,
                read_only: &spec.read_only,
                workspace_inside: WORKSPACE,
                helper,
                helper_arg: HELPER_ARG,
                network: spec.network,
                tmp_bytes: spec.limits.tmp_bytes,
            }),
        })
    } else {
        None
    };
    let euid = rustix::process::geteuid().as_raw();
    Ok(Plan {
        version: PLAN_VERSION,
        cgroup_procs,
        run_as: (run_as.0 != euid).then_some(run_as),
        bwrap,
        stdio,
        confine: if level == IsolationLevel::LimitsOnly {
            // Nothing but the limits is promised at this level (the kernel may lack Landlock):
            // no file system rules. seccomp and Landlock's network and scope rules still apply
            // where the kernel has them, as a bonus the outcome does not claim.
            Confine {
                read: vec![PathBuf::from("/")],
                read_write: vec![PathBuf::from("/")],
                require_landlock: false,
                ..confine
            }
        } else {
            confine
        },
    })
}

/// One try at one level.
#[derive(Clone, Copy)]
pub(crate) struct Attempt<'a> {
    pub(crate) spec: &'a SandboxSpec,
    pub(crate) root: Option<&'a bwrap::ImageRoot>,
    pub(crate) level: IsolationLevel,
    /// Canonical.
    workspace: &'a Path,
    pub(crate) helper: &'a Path,
    run_as: (u32, u32),
}

/// The run's cgroup and (fallback) temp dir, made, and the helper's plan, encoded.
pub(crate) fn setup(a: &Attempt<'_>, stdio: bool) -> Result<(Cleanup, String), SandboxError> {
    let Attempt {
        spec,
        level,
        workspace,
        run_as,
        ..
    } = *a;
    let id = run_id();
    let mut cleanup = Cleanup {
        cgroup: None,
        pgid: None,
        tmp: None,
    };
    if let Some(parent) = &spec.cgroup_parent {
        cleanup.cgroup = Some(RunCgroup::create(parent, &id, &spec.limits)?);
    }
    let namespaces = level == IsolationLevel::Namespaces;
    let (ws_inside, tmp_inside) = if namespaces {
        (PathBuf::from(WORKSPACE), PathBuf::from("/tmp"))
    } else {
        // The fallback's private temp dir, beside no other run's and owned by the sandbox user.
        let tmp = std::env::temp_dir().join(format!("pyagent-sandbox-{id}"));
        std::fs::create_dir(&tmp).map_err(SandboxError::Io)?;
        cleanup.tmp = Some(tmp.clone());
        std::os::unix::fs::chown(&tmp, Some(run_as.0), Some(run_as.1)).map_err(SandboxError::Io)?;
        (workspace.to_path_buf(), tmp)
    };
    let cgroup_procs = cleanup
        .cgroup
        .as_ref()
        .map(|c| c.procs_files())
        .unwrap_or_default();
    let plan = plan(a, &ws_inside, &tmp_inside, cgroup_procs, stdio)?;
    let plan_json = serde_json::to_string(&plan)
        .map_err(|e| SandboxError::Spawn(format!("encoding the plan: {e}")))?;
    Ok((cleanup, plan_json))
}

async fn attempt(a: Attempt<'_>) -> Result<Outcome, Failure> {
    let Attempt {
        spec,
        level,
        helper,
        ..
    } = a;
    let namespaces = level == IsolationLevel::Namespaces;
    let (mut cleanup, plan_json) = setup(&a, false)?;
    let (status_rx, status_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SandboxError::Io(e.into()))?;
    let mut cmd = Command::new(helper);
    cmd.arg(HELPER_ARG)
        .env_clear()
        .env(PLAN_ENV, plan_json)
        .stdin(Stdio::from(status_tx))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::Spawn(format!("{}: {e}", helper.display())))?;
    // The Command holds the parent's copy of the status pipe's write end: drop it, so that the
    // pipe reports EOF when the helper and bwrap are gone.
    drop(cmd);
    cleanup.pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let status_pipe =
        tokio::net::unix::pipe::Receiver::from_owned_fd(status_rx).map_err(SandboxError::Io)?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let cap = spec.limits.output_bytes;
    let mut out = Captured::default();
    let mut err = Captured::default();
    let mut status = Captured::default();
    let mut killed = None;
    let mut exit = None;
    {
        let out_f = read_capped(stdout, cap, &mut out);
        let err_f = read_capped(stderr, cap, &mut err);
        let status_f = read_capped(Some(status_pipe), STATUS_CAP, &mut status);
        let wait_f = async {
            match tokio::time::timeout(spec.limits.wall, child.wait()).await {
                Ok(r) => r,
                Err(_) => {
                    killed = Some(KillReason::WallClock);
                    cleanup.kill_tree();
                    let _ = child.start_kill();
                    child.wait().await
                }
            }
        };
        tokio::pin!(out_f, err_f, status_f, wait_f);
        let (mut out_done, mut err_done, mut status_done) = (false, false, false);
        let mut grace: Option<tokio::time::Instant> = None;
        loop {
            let deadline =
                grace.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut out_f, if !out_done => out_done = true,
                _ = &mut err_f, if !err_done => err_done = true,
                _ = &mut status_f, if !status_done => status_done = true,
                r = &mut wait_f, if exit.is_none() => {
                    exit = Some(r);
                    grace = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                    // The command is done; what it left running (daemons, background jobs)
                    // goes with it, and that closes the pipes they held.
                    if let Some(cg) = &cleanup.cgroup {
                        cg.kill_all(Duration::ZERO);
                    }
                }
                _ = tokio::time::sleep_until(deadline), if grace.is_some() => break,
            }
            if out_done && err_done && status_done && exit.is_some() {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let exit = exit
        .unwrap_or_else(|| Err(std::io::Error::other("not waited")))
        .map_err(SandboxError::Io)?;
    cleanup.pgid = None;

    let statuses: Vec<Status> = String::from_utf8_lossy(&status.data)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ready = statuses.iter().find_map(|s| match s {
        Status::Ready { landlock_full, .. } => Some(*landlock_full),
        _ => None,
    });
    if let Some(Status::Error { code, message }) =
        statuses.iter().find(|s| matches!(s, Status::Error { .. }))
    {
        return Err(Failure::Failed(SandboxError::Setup {
            code: code.clone(),
            message: message.clone(),
        }));
    }
    if ready.is_none() && killed.is_none() {
        let stderr_text = String::from_utf8_lossy(&err.data).trim().to_string();
        if namespaces && refuses_namespaces(&stderr_text) {
            return Err(Failure::NoNamespaces(stderr_text));
        }
        if namespaces && stderr_text.starts_with("bwrap:") {
            return Err(Failure::Failed(SandboxError::Setup {
                code: "sandbox.bwrap".into(),
                message: stderr_text,
            }));
        }
        return Err(Failure::Failed(SandboxError::Setup {
            code: "sandbox.helper".into(),
            message: format!(
                "the exec helper ended ({exit}) before starting the command: {stderr_text}"
            ),
        }));
    }
    let (mut exit_code, mut signal) = statuses
        .iter()
        .find_map(|s| match s {
            Status::Exit { code, signal } => Some((*code, *signal)),
            _ => None,
        })
        .unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            (exit.code().filter(|c| *c != HELPER_FAILED), exit.signal())
        });
    let (oom, pids_hit) = cleanup
        .cgroup
        .as_ref()
        .map(|c| (c.oom_kills(), c.pids_max_hits()))
        .unwrap_or((0, 0));
    if killed.is_none() && oom > 0 && exit_code != Some(0) {
        killed = Some(KillReason::Memory);
    }
    if killed == Some(KillReason::WallClock) {
        // Whatever the helper saw last, the sandbox ended the run.
        exit_code = None;
        signal = Some(libc::SIGKILL);
    }
    let cgroup_limits = cleanup.cgroup.is_some();
    let memory_peak_bytes = cleanup.cgroup.as_ref().and_then(|c| c.memory_peak());
    // Removing the cgroup waits (briefly) for the kernel to reap what was killed.
    tokio::task::spawn_blocking(move || drop(cleanup))
        .await
        .map_err(|e| SandboxError::Io(std::io::Error::other(e)))?;
    Ok(Outcome {
        exit_code,
        signal,
        stdout: out.data,
        stderr: err.data,
        stdout_truncated: out.truncated,
        stderr_truncated: err.truncated,
        killed,
        pids_limit_hit: pids_hit > 0,
        // The helper refuses to run below `level` (require_landlock), so `level` is what ran.
        isolation: level,
        landlock: level > IsolationLevel::LimitsOnly && ready == Some(true),
        cgroup_limits,
        memory_peak_bytes,
        elapsed,
        fallback_reason: None,
    })
}

/// Whether bwrap's error says the host refuses what namespaces need (user namespaces for this
/// user, a new network namespace's loopback, mounting /proc in a container that masks it), as
/// opposed to a problem of this run (say, a workspace that vanished), which must not switch
/// later runs to the fallback. bwrap's messages, from its sources (bubblewrap.c, network.c).
pub(crate) fn refuses_namespaces(bwrap_stderr: &str) -> bool {
    const SIGNS: &[&str] = &[
        "new namespace",
        "Creating new namespace failed",
        "setting up uid map",
        "setting up gid map",
        "setgroups",
        "loopback:",
        "Can't mount proc",
        "Operation not permitted",
    ];
    bwrap_stderr.starts_with("bwrap:") && SIGNS.iter().any(|s| bwrap_stderr.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_grants_the_system_dirs_the_workspace_and_its_temp_dir_only() {
        let spec = SandboxSpec::new(vec!["make".into()], "/srv/tasks/t1".into());
        let a = Attempt {
            root: None,
            spec: &spec,
            level: IsolationLevel::LandlockSeccomp,
            workspace: Path::new("/srv/tasks/t1"),
            helper: Path::new("/opt/pyagent/pyagent-sandbox-exec"),
            run_as: NOBODY,
        };
        let tmp = Path::new("/tmp/pyagent-sandbox-run-1");
        let p = plan(&a, a.workspace, tmp, vec![], false).unwrap();
        assert!(p.bwrap.is_none());
        assert_eq!(p.confine.read_write, [a.workspace, tmp]);
        assert!(p.confine.read.iter().all(|r| !a.workspace.starts_with(r)));
        assert!(p.confine.read.iter().any(|r| r == Path::new("/usr")));
        assert!(p.confine.require_landlock && !p.confine.network);
        let env: std::collections::HashMap<_, _> = p.confine.env.into_iter().collect();
        assert_eq!(env["PYAGENT_WORKSPACE"], "/srv/tasks/t1");
        assert_eq!(env["TMPDIR"], "/tmp/pyagent-sandbox-run-1");
    }

    #[test]
    fn the_steps_env_overrides_the_defaults_and_nothing_else_leaks() {
        let mut spec = SandboxSpec::new(vec!["make".into()], "/srv/tasks/t1".into());
        spec.env = vec![("PATH".into(), "/opt/bin".into()), ("K".into(), "v".into())];
        let a = Attempt {
            root: None,
            spec: &spec,
            level: IsolationLevel::LimitsOnly,
            workspace: Path::new("/srv/tasks/t1"),
            helper: Path::new("/h"),
            run_as: NOBODY,
        };
        let p = plan(&a, a.workspace, Path::new("/tmp/x"), vec![], false).unwrap();
        let names: Vec<_> = p.confine.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["HOME", "TMPDIR", "PYAGENT_WORKSPACE", "PATH", "K"]);
        assert_eq!(p.confine.env[3].1, "/opt/bin");
    }

    #[test]
    fn only_refused_namespaces_switch_to_the_fallback() {
        for refusal in [
            "bwrap: No permissions to create a new namespace, likely because the kernel does not allow non-privileged user namespaces.",
            "bwrap: setting up uid map: Permission denied",
            "bwrap: Creating new namespace failed: Operation not permitted",
            "bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted",
            "bwrap: Can't mount proc on /newroot/proc: Operation not permitted",
        ] {
            assert!(refuses_namespaces(refusal), "{refusal}");
        }
        for other in [
            "bwrap: Can't find source path /srv/tasks/gone: No such file or directory",
            "Operation not permitted",
            "",
        ] {
            assert!(!refuses_namespaces(other), "{other}");
        }
    }
}
