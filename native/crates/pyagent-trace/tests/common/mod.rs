//! Helpers for the tests that really run failing programs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "pyagent-trace-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Canonical, as the programs will print it (the temp dir may be behind a symlink).
        TempDir(dir.canonicalize().expect("canonical temp dir"))
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    pub fn root(&self) -> &str {
        self.0.to_str().expect("utf-8 temp dir")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a program printed and how it ended.
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub exit: Option<i32>,
}

pub fn run(cmd: &mut Command) -> Ran {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        exit: out.status.code(),
    }
}

/// The Python to run: `$PYAGENT_TEST_PYTHON`, else the repository's `.venv` (made by
/// `.ci/setup`, with pytest), else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PYAGENT_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../.venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// `go`, from PATH or its usual place.
pub fn go() -> PathBuf {
    let on_path = Command::new("go").arg("version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return PathBuf::from("go");
    }
    PathBuf::from("/usr/local/go/bin/go")
}

/// A Go command that needs nothing from the network.
pub fn go_command(dir: &Path) -> Command {
    let mut cmd = Command::new(go());
    cmd.current_dir(dir)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off");
    // Go refuses to build without a cache directory; an environment without HOME gets one in
    // the test's own directory (cold, so slower).
    let has_home = ["GOCACHE", "XDG_CACHE_HOME", "HOME"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if !has_home {
        cmd.env("GOCACHE", dir.join(".gocache"));
    }
    cmd
}

/// The functions of a failure's frames in the user's code, innermost first.
pub fn user_functions(f: &pyagent_trace::Failure) -> Vec<Option<&str>> {
    f.frames
        .iter()
        .filter(|fr| fr.user)
        .map(|fr| fr.function.as_deref())
        .collect()
}
