//! What every sandbox test needs: a real host check, temp dirs, and a spec at a given level.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pyagent_sandbox::{IsolationLevel, Limits, Outcome, SandboxSpec};

/// The levels every wall is proven at: namespaces, and the fallback without them.
pub const LEVELS: [IsolationLevel; 2] =
    [IsolationLevel::Namespaces, IsolationLevel::LandlockSeccomp];

/// The cgroup parent of the tests' runs, under the test process's own cgroup.
pub const CGROUP_PARENT: &str = "pyagent-sandbox-tests";

/// These tests run the real thing: they need root (cgroups, dropping to nobody) and bwrap.
/// Missing either is a failure with the reason, unless PYAGENT_SANDBOX_TESTS_MAY_SKIP=1 says
/// this environment is known not to have them; then the test returns early, saying so.
pub fn require_host() -> bool {
    let mut missing = Vec::new();
    if rustix::process::geteuid().as_raw() != 0 {
        missing.push("root (cgroups, dropping to nobody)".to_string());
    }
    let caps = pyagent_sandbox::probe();
    if !caps.landlock {
        missing.push("Landlock (Linux >= 5.13 with landlock in lsm=)".to_string());
    }
    if !caps.seccomp {
        missing.push("seccomp".to_string());
    }
    if caps.bwrap.is_none() {
        missing.push(
            "bubblewrap (`apt-get install bubblewrap`, or .ci/install-sandbox.sh)".to_string(),
        );
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("the sandbox tests need {}", missing.join(" and "));
    if std::env::var("PYAGENT_SANDBOX_TESTS_MAY_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {msg} (PYAGENT_SANDBOX_TESTS_MAY_SKIP=1)");
        false
    } else {
        panic!("{msg}; set PYAGENT_SANDBOX_TESTS_MAY_SKIP=1 to skip them knowingly");
    }
}

/// A directory under the system temp dir, world-traversable (so that only the sandbox, not
/// file permissions, keeps the command out), removed on drop.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "pyagent-sandbox-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        open_to_all(&path);
        TestDir(path)
    }

    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        open_to_all(&p);
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// rwx for everyone: a wall that holds here is the sandbox's, not the file mode's.
pub fn open_to_all(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}

pub fn spec(level: IsolationLevel, argv: &[&str], workspace: &Path) -> SandboxSpec {
    let mut spec = SandboxSpec::new(
        argv.iter().map(|s| s.to_string()).collect(),
        workspace.to_path_buf(),
    );
    spec.max_isolation = level;
    spec.min_isolation = level;
    spec.cgroup_parent = Some(CGROUP_PARENT.to_string());
    spec.helper = Some(PathBuf::from(env!("CARGO_BIN_EXE_pyagent-sandbox-exec")));
    spec.limits = Limits {
        // Generous: two busy cores; tests about time set their own.
        wall: Duration::from_secs(120),
        ..Limits::default()
    };
    spec
}

pub fn sh(level: IsolationLevel, script: &str, workspace: &Path) -> SandboxSpec {
    spec(level, &["/bin/sh", "-c", script], workspace)
}

pub async fn run(spec: &SandboxSpec) -> Outcome {
    match pyagent_sandbox::run(spec).await {
        Ok(o) => {
            assert_eq!(
                o.isolation, spec.max_isolation,
                "the run got another level: {o:?}"
            );
            o
        }
        Err(e) => panic!("run failed: {} [{}] hint: {}", e, e.code(), e.hint()),
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Host processes whose command line contains `marker`.
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
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(marker) {
                found.push(pid);
            }
        }
    }
    found
}

/// A unique string to find a test's processes by.
pub fn marker() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{:04}",
        std::process::id() % 10_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
