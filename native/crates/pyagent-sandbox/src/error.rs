//! Typed errors, each with a stable code (`sandbox.*`), a message and a hint.

use std::path::PathBuf;

use crate::spec::IsolationLevel;

/// Why a run did not happen (or could not be cleaned up). A command that ran and failed is not
/// an error: it is an [`crate::Outcome`] with a non-zero exit code.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("bubblewrap (bwrap) is not installed or not on PATH")]
    ToolMissing,
    #[error("the exec helper {} is missing or not executable", path.display())]
    HelperMissing { path: PathBuf },
    #[error("this host gives isolation `{got}`, below the required `{required}`: {why}")]
    IsolationBelowMinimum {
        required: IsolationLevel,
        got: IsolationLevel,
        why: String,
    },
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    #[error("cgroup {}: {message}", path.display())]
    Cgroup { path: PathBuf, message: String },
    #[error("workspace {}: {message}", path.display())]
    Workspace { path: PathBuf, message: String },
    #[error("could not start the sandbox: {0}")]
    Spawn(String),
    /// bubblewrap or the exec helper failed before the command started.
    #[error("sandbox setup failed ({code}): {message}")]
    Setup { code: String, message: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl SandboxError {
    /// The stable code, for logs, metrics and the executor's task errors.
    pub fn code(&self) -> &str {
        match self {
            SandboxError::ToolMissing => "sandbox.tool_missing",
            SandboxError::HelperMissing { .. } => "sandbox.helper_missing",
            SandboxError::IsolationBelowMinimum { .. } => "sandbox.isolation_below_minimum",
            SandboxError::InvalidSpec(_) => "sandbox.invalid_spec",
            SandboxError::Cgroup { .. } => "sandbox.cgroup",
            SandboxError::Workspace { .. } => "sandbox.workspace",
            SandboxError::Spawn(_) => "sandbox.spawn",
            SandboxError::Setup { code, .. } => code,
            SandboxError::Io(_) => "sandbox.io",
        }
    }

    /// What the operator can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            SandboxError::ToolMissing => {
                "install bubblewrap: `apt-get install bubblewrap` (Debian/Ubuntu), `dnf install bubblewrap` (Fedora)"
            }
            SandboxError::HelperMissing { .. } => {
                "install `pyagent-sandbox-exec` next to the daemon, or set PYAGENT_SANDBOX_EXEC to its path"
            }
            SandboxError::IsolationBelowMinimum { .. } => {
                "enable user namespaces (sysctl user.max_user_namespaces > 0; on Kubernetes a pod that may create them) \
                 and Landlock (boot with lsm=...,landlock), or lower the step's minimum isolation"
            }
            SandboxError::InvalidSpec(_) => "fix the step: a non-empty argv, non-zero limits, an existing workspace",
            SandboxError::Cgroup { .. } => {
                "the daemon needs write access to its own cgroup (systemd: Delegate=yes; a pod: a writable /sys/fs/cgroup), \
                 or run without cgroup_parent"
            }
            SandboxError::Workspace { .. } => "create the workspace directory before the run, owned by the daemon",
            SandboxError::Spawn(_) => "check that the exec helper and bwrap can be executed by the daemon",
            SandboxError::Setup { .. } => "see the message; `pyagent_sandbox::probe()` tells what this host supports",
            SandboxError::Io(_) => "check the daemon's file descriptors and disk",
        }
    }
}
