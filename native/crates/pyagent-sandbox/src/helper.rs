//! The exec helper's side: what runs between the daemon's spawn and the command's exec.
//!
//! Everything here happens in a fresh, single-threaded process (the helper binary, or the
//! daemon's binary started with [`HELPER_ARG`]), so per-thread calls (`setresuid`, Landlock's
//! and seccomp's restrict-self) cover the whole process, and no `unsafe` `pre_exec` is needed.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use crate::filter;
use crate::plan::{
    Confine, Plan, Status, HELPER_ARG, PLAN_ENV, PLAN_VERSION, STDERR_STATUS_PREFIX,
};

/// The Landlock ABI whose rights we ask for: file system rights through v5 (truncate, device
/// ioctls), TCP rules (v4) and scoping of signals and abstract Unix sockets (v6). "Fully
/// enforced" is judged against this ABI.
const ABI_WANTED: ABI = ABI::V6;

/// Call first thing in `main` of a binary that should double as the exec helper: when the first
/// argument is [`HELPER_ARG`] this runs the helper and never returns; otherwise it returns.
///
/// "First thing" means before any runtime starts threads: with `#[tokio::main]`, call it from a
/// plain `fn main` that then builds the runtime. (Were other threads running, the helper would
/// still be sound, since the user drop, Landlock and seccomp apply to the calling thread and
/// everything it execs or spawns; but it would be harder to reason about.)
pub fn main_if_invoked() {
    let mut args = std::env::args_os();
    let _program = args.next();
    if args.next().is_some_and(|a| a == HELPER_ARG) {
        main()
    }
}

/// The helper's `main`. Exits with the command's exit code (128 + signal when killed), or 125
/// when the helper itself failed (details on the status channel). In stdio mode it execs the
/// command instead, which then exits for itself.
pub fn main() -> ! {
    let plan = read_plan();
    let mut status = StatusOut::open(plan.as_ref().is_ok_and(|p| p.stdio));
    let code = match plan.and_then(|plan| run(&plan, &mut status)) {
        Ok(code) => code,
        Err((code, message)) => {
            status.report(&Status::Error {
                code: code.to_string(),
                message,
            });
            125
        }
    };
    std::process::exit(code)
}

/// Where status lines go: the pipe that is stdin (run mode), or stderr behind
/// [`STDERR_STATUS_PREFIX`] (stdio mode, where stdin is the command's).
struct StatusOut {
    file: Option<File>,
    prefix: &'static str,
}

impl StatusOut {
    fn open(stdio: bool) -> StatusOut {
        // A CLOEXEC duplicate is ours; the original descriptor is passed on through bwrap's exec
        // to the inner helper (and, in run mode, replaced by /dev/null for the command).
        let fd = if stdio {
            std::io::stderr().as_fd().try_clone_to_owned()
        } else {
            std::io::stdin().as_fd().try_clone_to_owned()
        };
        StatusOut {
            file: fd.ok().map(File::from),
            prefix: if stdio { STDERR_STATUS_PREFIX } else { "" },
        }
    }

    fn report(&mut self, line: &Status) {
        if let Some(file) = &mut self.file {
            if let Ok(json) = serde_json::to_vec(line) {
                let mut text = self.prefix.as_bytes().to_vec();
                text.extend(json);
                text.push(b'\n');
                // The daemon may be gone; the command's fate no longer matters to anyone then.
                let _ = file.write_all(&text);
            }
        }
    }
}

type Fail = (&'static str, String);

fn read_plan() -> Result<Plan, Fail> {
    let text = std::env::var(PLAN_ENV)
        .map_err(|_| ("sandbox.helper", format!("{PLAN_ENV} is not set")))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        (
            "sandbox.helper",
            format!("bad plan (helper from another version?): {e}"),
        )
    })?;
    if plan.version != PLAN_VERSION {
        return Err((
            "sandbox.helper",
            format!(
                "plan version {} but this helper speaks {PLAN_VERSION}",
                plan.version
            ),
        ));
    }
    Ok(plan)
}

fn run(plan: &Plan, status: &mut StatusOut) -> Result<i32, Fail> {
    // Read before anything can make the parent go away: stdio mode watches this parent (inside
    // bwrap's pid namespace it may well be pid 1).
    let parent = rustix::process::getppid();
    let pid = std::process::id().to_string();
    for procs in &plan.cgroup_procs {
        std::fs::write(procs, &pid).map_err(|e| {
            (
                "sandbox.cgroup",
                format!("joining {}: {e}", procs.display()),
            )
        })?;
    }
    if let Some((uid, gid)) = plan.run_as {
        drop_to(uid, gid)?;
    }
    if let Some(bwrap) = &plan.bwrap {
        let inner = Plan {
            version: PLAN_VERSION,
            cgroup_procs: Vec::new(),
            run_as: None,
            bwrap: None,
            confine: plan.confine.clone(),
            stdio: plan.stdio,
        };
        let inner = serde_json::to_string(&inner)
            .map_err(|e| ("sandbox.helper", format!("encoding the inner plan: {e}")))?;
        let mut cmd = Command::new(&bwrap.program);
        cmd.args(&bwrap.args).env_clear().env(PLAN_ENV, inner);
        if plan.stdio {
            // bwrap's pid namespace dies with bwrap, every process of it: the helper stays
            // beside bwrap to kill it when the daemon goes.
            let parent_fd = watch_parent(parent)?;
            let child = cmd
                .spawn()
                .map_err(|e| ("sandbox.spawn", format!("{}: {e}", bwrap.program.display())))?;
            return supervise(child, parent_fd);
        }
        let err = cmd.exec();
        return Err((
            "sandbox.spawn",
            format!("exec {}: {err}", bwrap.program.display()),
        ));
    }
    confine_and_run(&plan.confine, plan.stdio, parent, status)
}

/// setgroups, then gid, then uid: after the uid change the process may no longer change groups.
/// A root daemon's helper loses every capability with the uid (no SECBIT_KEEP_CAPS).
fn drop_to(uid: u32, gid: u32) -> Result<(), Fail> {
    use rustix::process::{Gid, Uid};
    let fail = |what: &str, e: rustix::io::Errno| ("sandbox.user", format!("{what}: {e}"));
    if rustix::process::geteuid().as_raw() == uid && rustix::process::getegid().as_raw() == gid {
        return Ok(());
    }
    rustix::thread::set_thread_groups(&[]).map_err(|e| fail("setgroups", e))?;
    let g = Gid::from_raw(gid);
    rustix::thread::set_thread_res_gid(g, g, g).map_err(|e| fail("setresgid", e))?;
    let u = Uid::from_raw(uid);
    rustix::thread::set_thread_res_uid(u, u, u).map_err(|e| fail("setresuid", e))?;
    Ok(())
}

/// A pidfd of the parent (the daemon; inside bwrap, its init), which becomes readable when the
/// parent process exits (the whole process, whichever of its threads started the helper: a
/// `PR_SET_PDEATHSIG` would fire when that thread ended); an error when it is already gone.
fn watch_parent(parent: Option<rustix::process::Pid>) -> Result<std::os::fd::OwnedFd, Fail> {
    let fail = |why: String| ("sandbox.helper", why);
    let pid = parent.ok_or_else(|| fail("no parent to watch".into()))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| fail(format!("pidfd_open of the parent: {e}")))?;
    if rustix::process::getppid() != parent {
        return Err(fail("the parent died during set-up".into()));
    }
    Ok(fd)
}

/// Stays beside a long-lived command (stdio mode) until it exits, and takes it down with the
/// parent: when the parent's pidfd turns readable (the daemon died, even by SIGKILL), the whole
/// process group (the helper, the command and its descendants that kept the group) is killed.
/// A death signal on the command itself would need a `pre_exec`, which is `unsafe`, and would
/// not reach its descendants. Outside, the helper supervises bwrap this way (whose pid namespace
/// dies with it); inside, the command, as belt and braces.
fn supervise(mut child: std::process::Child, parent: std::os::fd::OwnedFd) -> Result<i32, Fail> {
    std::thread::spawn(move || {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&parent, PollFlags::IN)];
        // Readable (the parent exited), or the watch itself broke: either way the command
        // must not outlive what can no longer be seen.
        while let Err(rustix::io::Errno::INTR) = poll(&mut fds, None) {}
        let _ = rustix::process::kill_current_process_group(rustix::process::Signal::KILL);
    });
    let exit = child
        .wait()
        .map_err(|e| ("sandbox.helper", format!("waiting for the command: {e}")))?;
    Ok(exit
        .code()
        .unwrap_or_else(|| 128 + exit.signal().unwrap_or(0)))
}

/// What Landlock achieved.
struct Landlocked {
    full: bool,
    any: bool,
}

fn landlock(c: &Confine) -> Result<Landlocked, Fail> {
    let fail = |e: landlock::RulesetError| ("sandbox.landlock", e.to_string());
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_WANTED))
        .map_err(fail)?
        .scope(Scope::from_all(ABI_WANTED))
        .map_err(fail)?;
    if !c.network {
        // Handled and never granted: no TCP bind or connect at all.
        ruleset = ruleset
            .handle_access(AccessNet::from_all(ABI_WANTED))
            .map_err(fail)?;
    }
    let mut created = ruleset.create().map_err(fail)?;
    let rules = [
        (&c.read, AccessFs::from_read(ABI_WANTED)),
        (&c.read_write, AccessFs::from_all(ABI_WANTED)),
        (&c.rw_files, AccessFs::from_file(ABI_WANTED)),
    ];
    for (paths, access) in rules {
        for path in paths {
            // Absent paths (no /lib32 on this host) are simply not granted.
            let Ok(fd) = PathFd::new(path) else { continue };
            created = created
                .add_rule(PathBeneath::new(fd, access))
                .map_err(fail)?;
        }
    }
    let status = created.restrict_self().map_err(fail)?;
    let landlocked = Landlocked {
        full: status.ruleset == RulesetStatus::FullyEnforced,
        any: status.ruleset != RulesetStatus::NotEnforced,
    };
    if c.require_landlock && !landlocked.any {
        return Err((
            "sandbox.landlock",
            "Landlock is not enforced by this kernel (not built in, or not in lsm=)".to_string(),
        ));
    }
    Ok(landlocked)
}

fn confine_and_run(
    c: &Confine,
    stdio: bool,
    parent: Option<rustix::process::Pid>,
    status: &mut StatusOut,
) -> Result<i32, Fail> {
    let (program, args) = c
        .argv
        .split_first()
        .ok_or(("sandbox.invalid_spec", "empty argv".to_string()))?;
    // Built before Landlock and seccomp, which the building does not need, so that a filter
    // error is reported rather than half-applied.
    let filters = filter::build(c.network).map_err(|e| ("sandbox.seccomp", e))?;
    let landlocked = landlock(c)?;
    filter::apply(&filters).map_err(|e| ("sandbox.seccomp", e))?;
    status.report(&Status::Ready {
        landlock_full: landlocked.full,
        landlock_any: landlocked.any,
    });
    if stdio {
        // Arm the watch on the parent before the command starts, so that no moment is left
        // in which the daemon could die unnoticed.
        let parent_fd = watch_parent(parent)?;
        match Command::new(program)
            .args(args)
            .env_clear()
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&c.cwd)
            .spawn()
        {
            Ok(child) => return supervise(child, parent_fd),
            Err(e) => {
                eprintln!("pyagent-sandbox: {program}: {e}");
                return Ok(if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                });
            }
        }
    }
    let mut child = match Command::new(program)
        .args(args)
        .env_clear()
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&c.cwd)
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            // As a shell would: 127 not found, 126 not executable; the reason on stderr.
            eprintln!("pyagent-sandbox: {program}: {e}");
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            status.report(&Status::Exit {
                code: Some(code),
                signal: None,
            });
            return Ok(code);
        }
    };
    let exit = child
        .wait()
        .map_err(|e| ("sandbox.helper", format!("waiting for the command: {e}")))?;
    status.report(&Status::Exit {
        code: exit.code(),
        signal: exit.signal(),
    });
    Ok(exit
        .code()
        .unwrap_or_else(|| 128 + exit.signal().unwrap_or(0)))
}
