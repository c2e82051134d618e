//! Runs one command isolated: the isolation layer of the logic-manifest executor.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pyagent_sandbox::SandboxError> {
//! use pyagent_sandbox::{run, IsolationLevel, SandboxSpec};
//! let mut spec = SandboxSpec::new(vec!["make".into(), "test".into()], "/srv/tasks/t1".into());
//! spec.cgroup_parent = Some("pyagent".into());
//! spec.min_isolation = IsolationLevel::LandlockSeccomp;
//! let outcome = run(&spec).await?;
//! println!("{:?} at {}", outcome.exit_code, outcome.isolation);
//! # Ok(()) }
//! ```
//!
//! # The walls
//!
//! At [`IsolationLevel::Namespaces`] (bubblewrap): new user, pid, ipc, uts, cgroup and, unless
//! [`SandboxSpec::network`], network namespaces; a root of read-only system dirs (`/usr`,
//! `/bin`, `/sbin`, `/lib*`, `/etc`) and nothing else of the host; the workspace read-write at
//! [`WORKSPACE`] as the working directory; a fresh size-capped tmpfs `/tmp`; a fresh `/proc`
//! and a minimal `/dev`; a new session; no capabilities. Inside, the exec helper applies
//! Landlock (read-only `/`, read-write workspace and `/tmp`, no TCP when the network is off,
//! no signals or abstract sockets out of the sandbox) and seccomp (which denies
//! ptrace, mount, namespaces, kexec, bpf, keyrings, perf, io_uring, non-Unix sockets when the
//! network is off, ...), which also sets no_new_privs, then runs the command.
//!
//! At [`IsolationLevel::LandlockSeccomp`] (no user namespaces, e.g. some Kubernetes pods): the
//! same Landlock and seccomp, with Landlock granting the system dirs read-only and the
//! workspace and a private temp dir read-write, at their host paths. Given up: the command sees
//! the host's process list, hostname and (read-only) system dirs at their real paths, `/tmp`
//! is not size-capped, and with the network on it shares the host's network as the sandbox user.
//!
//! At [`IsolationLevel::LimitsOnly`]: the drop to the sandbox user and the limits are what is
//! promised. seccomp, and Landlock's network and scope rules, are still applied where the kernel
//! has them, but the level does not claim them.
//!
//! At every level: the command runs as an unprivileged user (a root daemon's commands run as
//! `nobody`), in a per-run cgroup with CPU, memory (+swap) and pids limits when
//! [`SandboxSpec::cgroup_parent`] is set, under a wall-clock limit that kills the whole tree,
//! with stdout and stderr captured up to [`Limits::output_bytes`] each.
//!
//! # The exec helper
//!
//! Joining the cgroup, dropping the user, Landlock and seccomp must happen in the child between
//! fork and exec, which safe Rust cannot reach. So the crate starts a helper program instead
//! (the `pyagent-sandbox-exec` binary of this crate, or any binary whose `main` first calls
//! [`helper::main_if_invoked`]), which does those steps to itself and execs bubblewrap, and
//! inside bubblewrap runs again to confine itself and start the command. The plan travels in an
//! environment variable; the helper reports back on a pipe (see `plan.rs`).
//!
//! # Long-lived commands
//!
//! [`spawn`] starts a command under the same walls but returns once it runs, with its stdin and
//! stdout piped to the caller (an MCP server the executor talks to for the rest of a task). It
//! dies with the daemon (the helper watches the daemon's pidfd and kills bwrap, whose pid
//! namespace goes with it) and when the returned [`SandboxedChild`] is dropped.
//!
//! # Cancellation and crashes
//!
//! Dropping the future returned by [`run`] (a `select!` on the executor's cancellation token,
//! say) kills the run's whole process tree and removes its cgroup and temp dir. A daemon that
//! crashed cannot do that: [`reap_orphans`] at start-up kills and removes what runs of dead
//! daemons left under the cgroup parent.
//!
//! # Levels, minimums and errors
//!
//! [`probe`] says what the host supports. A run starts at [`SandboxSpec::max_isolation`] and
//! falls back when user namespaces turn out to be unavailable for the sandbox user; the
//! [`Outcome::isolation`] says what it got. Below [`SandboxSpec::min_isolation`] the run does
//! not start: [`SandboxError::IsolationBelowMinimum`]. Every error has a stable
//! [`SandboxError::code`] and a [`SandboxError::hint`].

mod bwrap;
mod capture;
mod cgroup;
mod elf;
mod error;
mod filter;
pub mod helper;
mod plan;
mod probe;
mod run;
mod spawn;
mod spec;

pub use cgroup::reap_orphans;
pub use error::SandboxError;
pub use plan::HELPER_ARG;
pub use probe::{probe, Capabilities};
pub use run::run;
pub use spawn::{spawn, SandboxedChild};
pub use spec::{IsolationLevel, KillReason, Limits, Outcome, SandboxSpec, WORKSPACE};
