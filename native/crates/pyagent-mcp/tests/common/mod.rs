//! What the MCP tests share: the real servers' venv, the host check, workspaces, and sessions
//! whose servers run in the real sandbox.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyagent_mcp::{SessionConfig, ToolServer, Transport};
use pyagent_sandbox::{IsolationLevel, SandboxSpec};

/// The cgroup parent of the tests' servers, under the test process's own cgroup.
pub const CGROUP_PARENT: &str = "pyagent-mcp-tests";

pub const TESTING_SERVER: &str = include_str!("../servers/testing_server.py");
pub const NEVER_INITIALIZES: &str = include_str!("../servers/never_initializes.py");

/// The venv of the real MCP servers (`mcp-server-time`, `mcp-server-git`, the `mcp` SDK), made by
/// `.ci/install-mcp-servers.sh` (called by `.ci/setup`); `PYAGENT_MCP_VENV` overrides the place.
pub fn venv() -> PathBuf {
    let path = std::env::var_os("PYAGENT_MCP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../.tools/mcp-venv"));
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    assert!(
        path.join("bin/mcp-server-time").is_file() && path.join("bin/mcp-server-git").is_file(),
        "no MCP servers in {}: run .ci/install-mcp-servers.sh (part of .ci/setup), or set \
         PYAGENT_MCP_VENV to a venv with mcp-server-time and mcp-server-git",
        path.display()
    );
    path
}

/// The servers run in the real sandbox: root (cgroups, the drop to nobody) and bwrap. Missing
/// either fails the test, unless PYAGENT_SANDBOX_TESTS_MAY_SKIP=1 says this host is known not
/// to have them.
pub fn require_host() -> bool {
    let mut missing = Vec::new();
    if rustix::process::geteuid().as_raw() != 0 {
        missing.push("root");
    }
    if pyagent_sandbox::probe().bwrap.is_none() {
        missing.push("bubblewrap (.ci/install-sandbox.sh)");
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("the MCP tests need {}", missing.join(" and "));
    if std::env::var("PYAGENT_SANDBOX_TESTS_MAY_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {msg} (PYAGENT_SANDBOX_TESTS_MAY_SKIP=1)");
        false
    } else {
        panic!("{msg}; set PYAGENT_SANDBOX_TESTS_MAY_SKIP=1 to skip them knowingly");
    }
}

/// A task's workspace under the temp dir, removed on drop.
pub struct Workspace(pub PathBuf);

impl Workspace {
    pub fn new(tag: &str) -> Workspace {
        let path = std::env::temp_dir().join(format!("pyagent-mcp-test-{tag}-{}", unique()));
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Workspace(path)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A number no other test (of this process or another) uses.
pub fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    u64::from(std::process::id()) * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

/// The sandbox of a task's servers at `level`, this crate's binary as the exec helper.
pub fn sandbox(workspace: &Path, level: IsolationLevel) -> SandboxSpec {
    let mut spec = SandboxSpec::new(Vec::new(), workspace.to_path_buf());
    spec.max_isolation = level;
    spec.min_isolation = level;
    spec.cgroup_parent = Some(CGROUP_PARENT.to_string());
    spec.helper = Some(PathBuf::from(env!("CARGO_BIN_EXE_pyagent-mcp-call")));
    spec.read_only = vec![venv()];
    spec
}

/// Generous timeouts: two busy cores, and Python servers that import a lot.
pub fn config(workspace: &Path) -> SessionConfig {
    let mut c = SessionConfig::new(sandbox(workspace, IsolationLevel::Namespaces));
    c.start_timeout = Duration::from_secs(60);
    c.call_timeout = Duration::from_secs(60);
    c
}

pub fn stdio(name: &str, command: &[&str]) -> ToolServer {
    ToolServer {
        name: name.to_string(),
        transport: Transport::Stdio,
        command: command.iter().map(|s| s.to_string()).collect(),
        url: None,
        port: None,
    }
}

pub fn venv_bin(name: &str) -> String {
    venv().join("bin").join(name).to_string_lossy().into_owned()
}

pub fn args(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().expect("an object").clone()
}

/// Host processes whose command line contains `marker` (NULs read as spaces).
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(marker) && pid != std::process::id() {
            found.push(pid);
        }
    }
    found
}

/// Waits until `done` holds, polling; panics with `what` after `limit`.
pub async fn await_condition(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
