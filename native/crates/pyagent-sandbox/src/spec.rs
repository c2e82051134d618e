//! What the caller asks for ([`SandboxSpec`], [`Limits`]) and what it gets back ([`Outcome`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How strongly a run was isolated, weakest first, so levels compare with `<` and `>=`.
///
/// A run reports the level it actually got ([`Outcome::isolation`]); it never claims more.
/// The caller names the weakest level it accepts ([`SandboxSpec::min_isolation`]); a host that
/// cannot give it fails the run with `sandbox.isolation_below_minimum` before anything starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// Only the resource limits (cgroups, wall clock, output caps) and the drop to the sandbox
    /// user: the command sees the host's file system and network as that user would.
    LimitsOnly,
    /// No new namespaces (no user namespaces on this host, e.g. some Kubernetes pods), but
    /// Landlock confines the file system (read-only system dirs, read-write workspace and a
    /// private temp dir, nothing else), and TCP when the network is off; seccomp denies the
    /// dangerous syscalls and non-Unix sockets when the network is off; no_new_privs is set.
    LandlockSeccomp,
    /// bubblewrap: new user, pid, ipc, uts, mount, cgroup (and, unless the network is allowed,
    /// network) namespaces over a read-only root of system dirs only, plus everything of
    /// [`IsolationLevel::LandlockSeccomp`] applied inside.
    Namespaces,
}

impl IsolationLevel {
    /// The stable name used in errors, logs and `docs/sandbox.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::LimitsOnly => "limits_only",
            IsolationLevel::LandlockSeccomp => "landlock_seccomp",
            IsolationLevel::Namespaces => "namespaces",
        }
    }
}

impl std::fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource limits of one run. Every limit is always on: there is no "unlimited".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit; on expiry the whole process tree is killed ([`KillReason::WallClock`]).
    pub wall: Duration,
    /// CPU bandwidth in millicores (1000 = one full core), as `cpu.cfs_quota_us` over a 100 ms
    /// period (cgroup v2: `cpu.max`).
    pub cpu_millis: u32,
    /// Memory limit in bytes, swap included where the host accounts swap (`memory.memsw.*`).
    pub memory_bytes: u64,
    /// Maximum number of processes and threads (`pids.max`); contains fork bombs.
    pub pids: u32,
    /// Cap of each of stdout and stderr kept in memory; the rest is read and discarded, and the
    /// `*_truncated` flag of the [`Outcome`] is set.
    pub output_bytes: usize,
    /// Size of each of the private `/tmp` and `/dev/shm` (tmpfs) at
    /// [`IsolationLevel::Namespaces`]. The fallback's temp dir lives on the host's disk and is
    /// not capped.
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(60),
            cpu_millis: 1000,
            memory_bytes: 512 << 20,
            pids: 256,
            output_bytes: 1 << 20,
            tmp_bytes: 64 << 20,
        }
    }
}

/// One command to run isolated.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    /// The command and its arguments; `argv[0]` is looked up in the sandbox's `PATH`.
    pub argv: Vec<String>,
    /// The command's whole environment besides `PATH`, `HOME`, `TMPDIR` and
    /// `PYAGENT_WORKSPACE`, which the sandbox sets (and an entry here overrides). Nothing of the
    /// daemon's own environment leaks in.
    pub env: Vec<(String, String)>,
    /// The task's workspace on the host: an existing directory, read-write for the command and
    /// its working directory. Mounted at [`WORKSPACE`] with namespaces; at its host path in the
    /// fallback (`PYAGENT_WORKSPACE` says where).
    pub workspace: PathBuf,
    /// Host directories (or files) the command may read but not write, bound read-only at the
    /// same path (with namespaces) and granted read by Landlock: where a tool the command runs
    /// is installed outside the system dirs (an MCP server's venv, say). Absolute paths that
    /// exist; never the workspace or anything holding it.
    pub read_only: Vec<PathBuf>,
    /// Whether the firewall allows this step the network. Off: a new, empty network namespace
    /// plus seccomp and Landlock rules against non-Unix sockets. On: the host's network.
    pub network: bool,
    pub limits: Limits,
    /// The weakest isolation the caller accepts; see [`IsolationLevel`].
    pub min_isolation: IsolationLevel,
    /// The strongest isolation to try. [`IsolationLevel::Namespaces`] in production; tests and
    /// operators lower it to exercise or force the fallback.
    pub max_isolation: IsolationLevel,
    /// The cgroup parent, a relative path. cgroup v1 (`memory`, `pids`, `cpu`, `freezer`): the
    /// run gets `<daemon's own cgroup>/<parent>/<run id>` in each hierarchy, so that a daemon
    /// confined by systemd or a pod stays inside its own limits and needs only the delegation it
    /// has. cgroup v2: `<parent of the daemon's own cgroup>/<parent>/<run id>`, because v2 lets
    /// no cgroup with processes (the daemon's) give controllers to children; put the daemon in a
    /// leaf of its delegated cgroup (systemd: `DelegateSubgroup=daemon`). Removed afterwards.
    /// `None`: no cgroup, so no memory, CPU or pids limit (the wall clock and output caps still
    /// hold); [`Outcome::cgroup_limits`] says so.
    pub cgroup_parent: Option<String>,
    /// The host user the command runs as, `(uid, gid)`. `None`: the daemon's own user, except
    /// that a daemon running as root runs commands as `nobody` (65534), never as root. The
    /// workspace is chowned to this user when it differs from the daemon's.
    pub run_as: Option<(u32, u32)>,
    /// A root file system to run in instead of the host's system dirs (an image's, unpacked
    /// by pyagent-image). Needs [`IsolationLevel::Namespaces`]: without a mount namespace the
    /// command would see the host's root, so a run with a root never falls back below it.
    pub root: Option<PathBuf>,
    /// The exec helper (`pyagent-sandbox-exec`, or any binary that calls
    /// [`crate::helper::main_if_invoked`] first thing). `None`: `$PYAGENT_SANDBOX_EXEC`, else
    /// `pyagent-sandbox-exec` next to the current executable or in its parent directory.
    pub helper: Option<PathBuf>,
}

impl SandboxSpec {
    /// A spec with default limits, no network, `min_isolation` [`IsolationLevel::Namespaces`].
    pub fn new(argv: Vec<String>, workspace: PathBuf) -> Self {
        SandboxSpec {
            argv,
            env: Vec::new(),
            workspace,
            read_only: Vec::new(),
            network: false,
            limits: Limits::default(),
            min_isolation: IsolationLevel::Namespaces,
            max_isolation: IsolationLevel::Namespaces,
            cgroup_parent: None,
            run_as: None,
            root: None,
            helper: None,
        }
    }
}

/// Where the workspace is mounted at [`IsolationLevel::Namespaces`].
pub const WORKSPACE: &str = "/workspace";

/// Why the sandbox killed the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillReason {
    /// It ran past [`Limits::wall`].
    WallClock,
    /// The kernel's OOM killer killed a process of the run at [`Limits::memory_bytes`].
    Memory,
}

/// What happened to one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The command's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed the command, if one did.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Set when the sandbox (wall clock) or the kernel on its behalf (memory) killed the run.
    pub killed: Option<KillReason>,
    /// Whether a fork or clone failed at [`Limits::pids`] (the run goes on; forks just fail).
    pub pids_limit_hit: bool,
    /// The isolation the run actually got.
    pub isolation: IsolationLevel,
    /// Whether Landlock was fully enforced (kernel ABI covering every right asked for).
    pub landlock: bool,
    /// Whether the cgroup limits (memory, CPU, pids) applied.
    pub cgroup_limits: bool,
    /// The run's peak memory use (page cache and tmpfs included), when it had a cgroup.
    pub memory_peak_bytes: Option<u64>,
    pub elapsed: Duration,
    /// Why `isolation` is below [`SandboxSpec::max_isolation`], when it is (bwrap's own error
    /// when it could not create namespaces, for instance).
    pub fallback_reason: Option<String>,
}

impl Outcome {
    /// Exited on its own with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.killed.is_none()
    }
}
