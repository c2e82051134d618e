//! The contract between the library (in the daemon) and the exec helper it starts: a [`Plan`]
//! in one environment variable, and status lines ([`Status`]) back on the helper's stdin, which
//! is the write end of a pipe (the one descriptor std lets a parent hand a child without
//! `unsafe`).
//!
//! Both ends are this crate at one version, so the version field only guards against a stale
//! helper binary installed next to a newer daemon.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The environment variable that carries the [`Plan`] as JSON. An environment variable rather
/// than argv, because argv is world-readable in `/proc` and the command's env may hold tokens.
pub(crate) const PLAN_ENV: &str = "PYAGENT_SANDBOX_PLAN";
/// The first argument that selects the helper mode of a binary.
pub const HELPER_ARG: &str = "__pyagent-sandbox-exec";
pub(crate) const PLAN_VERSION: u32 = 2;
/// In stdio mode ([`Plan::stdio`]) the helper's status lines go to stderr, each behind this
/// prefix, because stdin and stdout belong to the command. They all come before the command
/// starts, so nothing the command writes is ever read as one.
pub(crate) const STDERR_STATUS_PREFIX: &str = "\u{1e}pyagent-sandbox-status ";

/// What the helper does, in order: join the cgroups, drop to the user, then either exec
/// bubblewrap (which starts the helper again inside, with a plan of `confine` only) or confine
/// itself and run the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Plan {
    pub version: u32,
    /// `cgroup.procs` files to write the helper's own pid to, before anything else runs.
    pub cgroup_procs: Vec<PathBuf>,
    /// `(uid, gid)` to switch to (the helper starts as the daemon's user).
    pub run_as: Option<(u32, u32)>,
    pub bwrap: Option<Bwrap>,
    pub confine: Confine,
    /// A long-lived command on the caller's pipes ([`crate::spawn`]): stdin and stdout are the
    /// command's, status goes to stderr, and the helper stays to kill bwrap (or the command) when
    /// the daemon's pidfd says it exited.
    pub stdio: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bwrap {
    pub program: PathBuf,
    /// All of bwrap's arguments, ending with the helper's path inside and [`HELPER_ARG`].
    pub args: Vec<String>,
}

/// Landlock, seccomp and the command, applied by the helper to itself (inside bubblewrap, or
/// directly in the fallback).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Confine {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Readable and executable, with everything beneath.
    pub read: Vec<PathBuf>,
    /// Readable, writable, executable, with everything beneath.
    pub read_write: Vec<PathBuf>,
    /// Single files readable and writable (`/dev/null` and friends).
    pub rw_files: Vec<PathBuf>,
    pub network: bool,
    /// Fail (rather than run less confined) when Landlock cannot be enforced at all.
    pub require_landlock: bool,
}

/// One line of JSON the helper writes to its status pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Status {
    /// Confined and about to start the command.
    Ready {
        landlock_full: bool,
        landlock_any: bool,
    },
    /// The command ended.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// The helper could not do its part; nothing ran.
    Error { code: String, message: String },
}
