//! What this host supports, found once per process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use landlock::{Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, ABI};

use crate::spec::IsolationLevel;

/// The sandboxing features of this host, as far as the daemon's own user can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// bubblewrap's path, if installed.
    pub bwrap: Option<PathBuf>,
    /// Whether bwrap could create user, pid and network namespaces as the daemon's user. A root
    /// daemon's commands run as `nobody`, for whom the kernel (or AppArmor) may refuse what it
    /// grants root; such a refusal is found at the first run, which then falls back, and later
    /// runs go straight to the fallback.
    pub namespaces: bool,
    /// bwrap's error when `namespaces` is false and bwrap exists.
    pub namespaces_error: Option<String>,
    /// Whether the kernel enforces Landlock (any ABI).
    pub landlock: bool,
    /// Whether the kernel has seccomp filters and seccompiler knows this architecture.
    pub seccomp: bool,
    /// Whether a cgroup hierarchy with the memory, pids and cpu controllers is mounted.
    pub cgroups: bool,
    /// The strongest level a run can get here (before the per-user check above).
    pub best: IsolationLevel,
}

/// Probes once and caches: the host does not change under a running daemon.
pub fn probe() -> Capabilities {
    static CAPS: OnceLock<Capabilities> = OnceLock::new();
    CAPS.get_or_init(probe_now).clone()
}

fn probe_now() -> Capabilities {
    let bwrap = find_bwrap();
    let (namespaces, namespaces_error) = match &bwrap {
        Some(path) => match try_bwrap(path) {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        },
        None => (false, None),
    };
    let landlock = landlock_works();
    let seccomp = seccomp_works();
    let cgroups = Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        || ["memory", "pids", "cpu"]
            .iter()
            .all(|c| Path::new("/sys/fs/cgroup").join(c).is_dir());
    let best = if namespaces && seccomp {
        IsolationLevel::Namespaces
    } else if landlock && seccomp {
        IsolationLevel::LandlockSeccomp
    } else {
        IsolationLevel::LimitsOnly
    };
    Capabilities {
        bwrap,
        namespaces,
        namespaces_error,
        landlock,
        seccomp,
        cgroups,
        best,
    }
}

/// `$PYAGENT_SANDBOX_BWRAP` if set (an operator's choice of build, or a test's stand-in), else
/// `bwrap` on `PATH`, as the daemon would exec it.
pub(crate) fn find_bwrap() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PYAGENT_SANDBOX_BWRAP") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join("bwrap"))
        .find(|p| p.is_file())
}

/// The smallest sandbox of the real shape: new user, pid and network namespaces over /usr.
fn try_bwrap(bwrap: &Path) -> Result<(), String> {
    let mut cmd = Command::new(bwrap);
    cmd.args(["--unshare-user", "--unshare-pid", "--unshare-net"]);
    cmd.args(["--die-with-parent"]);
    for arg in crate::bwrap::system_dir_args() {
        cmd.arg(arg);
    }
    let out = cmd
        .args(["--proc", "/proc", "--dev", "/dev", "--", "true"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn landlock_works() -> bool {
    // Creating (not applying) a ruleset with a hard requirement fails where Landlock is absent
    // or disabled, and leaves this process unrestricted either way.
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|r| r.create())
        .is_ok()
}

fn seccomp_works() -> bool {
    let arch_known = seccompiler::TargetArch::try_from(std::env::consts::ARCH).is_ok();
    let kernel_has = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false);
    arch_known && kernel_has
}
