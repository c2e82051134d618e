//! bubblewrap's command line for one run: a pure function of the run's parameters.

use std::path::Path;

/// System directories of the read-only root. The node's data dir, /home, /root, /var, /run and
/// /tmp are not among them, so nothing of the daemon's state is even visible.
pub(crate) const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// Where the exec helper is mounted inside.
pub(crate) const HELPER_INSIDE: &str = "/.pyagent/exec";

/// `--ro-bind` for each system dir that exists, `--symlink` for those that are symlinks (the
/// merged-/usr layout: /bin -> usr/bin), so the layout inside matches the host's.
pub(crate) fn system_dir_args() -> Vec<String> {
    let mut args = Vec::new();
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        if let Ok(target) = std::fs::read_link(path) {
            args.extend([
                "--symlink".to_string(),
                target.to_string_lossy().into_owned(),
                dir.to_string(),
            ]);
        } else if path.is_dir() {
            args.extend(["--ro-bind".to_string(), dir.to_string(), dir.to_string()]);
        }
    }
    args
}

/// Where the host's dynamic loader and library dirs go inside an image's root, for the helper.
const HOST_RUNTIME_INSIDE: &str = "/.pyagent/host";

/// `--ro-bind` of each top-level entry of an image's root file system (`--symlink` for
/// symlinks), onto bwrap's own tmpfs root: binding the image at `/` itself would leave no place
/// to create /proc, /workspace and the helper's mount point in a read-only root.
pub(crate) fn image_root_args(root: &Path) -> std::io::Result<Vec<String>> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(root)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    let mut args = Vec::new();
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if matches!(
            name.as_str(),
            "proc" | "dev" | "tmp" | "workspace" | ".pyagent"
        ) {
            continue;
        }
        let inside = format!("/{name}");
        let path = e.path();
        if let Ok(target) = std::fs::read_link(&path) {
            args.extend([
                "--symlink".into(),
                target.to_string_lossy().into_owned(),
                inside,
            ]);
        } else {
            args.extend([
                "--ro-bind".into(),
                path.to_string_lossy().into_owned(),
                inside,
            ]);
        }
    }
    Ok(args)
}

/// A root file system other than the host's (a step's image).
pub(crate) struct ImageRoot {
    /// The host's loader and library dirs for a dynamically linked helper.
    pub host_runtime: Option<(std::path::PathBuf, Vec<std::path::PathBuf>)>,
    pub entries: Vec<String>,
}

pub(crate) struct BwrapRun<'a> {
    pub root: Option<&'a ImageRoot>,
    pub workspace: &'a Path,
    /// Host paths bound read-only at the same path.
    pub read_only: &'a [std::path::PathBuf],
    pub workspace_inside: &'a str,
    pub helper: &'a Path,
    pub helper_arg: &'a str,
    pub network: bool,
    pub tmp_bytes: u64,
}

/// The full argument list: namespaces, the root, /proc, /dev, /tmp, the workspace, then the
/// helper to run inside.
pub(crate) fn args(run: &BwrapRun<'_>) -> Vec<String> {
    let mut a: Vec<String> = [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !run.network {
        a.push("--unshare-net".into());
    }
    let s = |x: &str| x.to_string();
    a.extend([
        // Killing bwrap kills the sandbox's pid 1 and so every process in its pid namespace.
        s("--die-with-parent"),
        // A new session: no TIOCSTI into the daemon's terminal, no job-control signals from it.
        s("--new-session"),
        s("--cap-drop"),
        s("ALL"),
        s("--hostname"),
        s("pyagent-sandbox"),
    ]);
    match run.root {
        Some(image) => a.extend(image.entries.iter().cloned()),
        None => a.extend(system_dir_args()),
    }
    a.extend([s("--proc"), s("/proc"), s("--dev"), s("/dev")]);
    // /tmp and /dev/shm as tmpfs of their own with a size: bwrap's /dev is a tmpfs without one,
    // and a run without a memory cgroup could otherwise fill the host's memory through it.
    for dir in ["/tmp", "/dev/shm"] {
        a.extend([s("--size"), run.tmp_bytes.to_string(), s("--tmpfs"), s(dir)]);
    }
    // After the tmpfs mounts, which would otherwise hide a path under /tmp.
    for path in run.read_only {
        let p = path.to_string_lossy().into_owned();
        a.extend([s("--ro-bind"), p.clone(), p]);
    }
    let ws = run.workspace.to_string_lossy().into_owned();
    a.extend([
        s("--bind"),
        ws,
        s(run.workspace_inside),
        s("--chdir"),
        s(run.workspace_inside),
    ]);
    let runtime = run.root.and_then(|r| r.host_runtime.as_ref());
    let mut exec = vec![s(HELPER_INSIDE), s(run.helper_arg)];
    if let Some((loader, dirs)) = runtime {
        // The image's own libc may differ from the helper's: the helper runs on the host's,
        // through the host's loader (`ld.so --library-path DIRS PROGRAM`); the command it
        // executes then loads the image's.
        let loader_inside = format!("{HOST_RUNTIME_INSIDE}/ld.so");
        a.extend([
            s("--ro-bind"),
            loader.to_string_lossy().into_owned(),
            loader_inside.clone(),
        ]);
        let mut inside = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            let at = format!("{HOST_RUNTIME_INSIDE}/lib{i}");
            a.extend([s("--ro-bind"), d.to_string_lossy().into_owned(), at.clone()]);
            inside.push(at);
        }
        exec = vec![
            loader_inside,
            s("--library-path"),
            inside.join(":"),
            s(HELPER_INSIDE),
            s(run.helper_arg),
        ];
    }
    a.extend([
        s("--ro-bind"),
        run.helper.to_string_lossy().into_owned(),
        s(HELPER_INSIDE),
        // bwrap's root and /dev are tmpfs without a size, owned by the sandbox user. Landlock
        // keeps the command from writing there; read-only mounts keep it so where the kernel has
        // no Landlock. (Device nodes stay writable on a read-only mount: /dev/null works.)
        s("--remount-ro"),
        s("/dev"),
        s("--remount-ro"),
        s("/"),
        s("--"),
    ]);
    a.extend(exec);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(network: bool) -> Vec<String> {
        args(&BwrapRun {
            root: None,
            workspace: Path::new("/srv/tasks/t1"),
            read_only: &[],
            workspace_inside: "/workspace",
            helper: Path::new("/opt/pyagent/pyagent-sandbox-exec"),
            helper_arg: "__x",
            network,
            tmp_bytes: 1 << 20,
        })
    }

    #[test]
    fn read_only_paths_are_bound_read_only_at_their_own_path() {
        let ro = [std::path::PathBuf::from("/tmp/mcp-venv")];
        let a = args(&BwrapRun {
            root: None,
            workspace: Path::new("/srv/tasks/t1"),
            read_only: &ro,
            workspace_inside: "/workspace",
            helper: Path::new("/h"),
            helper_arg: "__x",
            network: false,
            tmp_bytes: 1 << 20,
        });
        let i = a.iter().position(|x| x == "/tmp/mcp-venv").unwrap();
        assert_eq!(
            &a[i - 1..i + 2],
            ["--ro-bind", "/tmp/mcp-venv", "/tmp/mcp-venv"]
        );
        let tmpfs = a.iter().position(|x| x == "--tmpfs").unwrap();
        assert!(tmpfs < i, "the bind comes after the /tmp it may lie in");
        assert_eq!(a.iter().filter(|x| *x == "--bind").count(), 1);
    }

    #[test]
    fn network_namespace_unless_allowed() {
        assert!(run(false).contains(&"--unshare-net".to_string()));
        assert!(!run(true).contains(&"--unshare-net".to_string()));
    }

    #[test]
    fn workspace_is_the_only_writable_bind_and_the_helper_comes_last() {
        let a = run(false);
        let binds: Vec<_> = a
            .iter()
            .enumerate()
            .filter(|(_, x)| *x == "--bind")
            .map(|(i, _)| (a[i + 1].as_str(), a[i + 2].as_str()))
            .collect();
        assert_eq!(binds, [("/srv/tasks/t1", "/workspace")]);
        assert_eq!(&a[a.len() - 3..], ["--", HELPER_INSIDE, "__x"]);
        let size = a.iter().position(|x| x == "--size").unwrap();
        assert_eq!(a[size + 1], "1048576");
        assert_eq!(a[size + 2], "--tmpfs");
    }
}
