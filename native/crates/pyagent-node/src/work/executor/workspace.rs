//! Task workspaces and the image cache on this node's disk: where they live, who may reach
//! them, their quota, and their release.

use std::path::PathBuf;

pub(super) fn release_all(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    // Step captures (files beside the workspaces) stay: committed traces name them.
    for entry in entries.flatten().filter(|e| e.path().is_dir()) {
        release_workspace(root, &entry.file_name().to_string_lossy());
    }
}

/// Where this node's task workspaces live: under the system's temp dir, not the data dir. The
/// sandbox runs commands as an unprivileged user who must be able to reach the workspace (bwrap
/// binds it as that user), and the data dir holds the node's key and may sit under private
/// folders. Each level is created by the daemon, searchable but not listable by others.
pub(super) fn workspace_root(cfg: &crate::config::NodeConfig) -> PathBuf {
    std::env::temp_dir()
        .join("pyagent-work")
        .join(format!("{}-{}", cfg.swarm, cfg.node_id))
}

/// Where this node unpacks step images: beside the workspaces and for the same reason (bwrap
/// binds an image's root as the sandbox user). Both levels are made by [`make_searchable_dir`],
/// whose chmod fails on a directory someone else planted there first.
pub(super) fn image_cache(cfg: &crate::config::NodeConfig) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("pyagent-images")
        .join(format!("{}-{}", cfg.swarm, cfg.node_id));
    for level in [dir.parent(), Some(dir.as_path())].into_iter().flatten() {
        if let Err(e) = make_searchable_dir(level) {
            tracing::error!(dir = %level.display(), error = %e, "image cache unusable: steps with an image will fail (PA728)");
        }
    }
    dir
}

pub(super) fn make_searchable_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// Creates `root/<task>` (and `root`) searchable by the sandbox user, with a disk quota of
/// `quota` bytes where this node may mount a tmpfs there (as root: the local target); elsewhere
/// (an unprivileged pod) it is a plain directory and `Ok(false)` says the quota is not enforced.
pub fn task_workspace(
    root: &std::path::Path,
    task: &str,
    quota: u64,
) -> std::io::Result<(PathBuf, bool)> {
    if let Some(parent) = root.parent() {
        make_searchable_dir(parent)?;
    }
    make_searchable_dir(root)?;
    let dir = root.join(task);
    std::fs::create_dir_all(&dir)?;
    let quota_on = is_mount_point(&dir)? || mount_quota(&dir, quota);
    Ok((dir, quota_on))
}

pub(super) fn is_mount_point(dir: &std::path::Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let parent = dir.parent().unwrap_or(dir);
    Ok(std::fs::metadata(dir)?.dev() != std::fs::metadata(parent)?.dev())
}

/// `mount -t tmpfs -o size=<quota>`: the util-linux command rather than the syscall, so that
/// the crate stays free of `unsafe`; false when the node may not mount (not root, no
/// CAP_SYS_ADMIN).
pub(super) fn mount_quota(dir: &std::path::Path, quota: u64) -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={quota},mode=0700,nosuid,nodev"))
        .arg("pyagent-task")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// When a task leaves this node: its workspace is unmounted (if it was a tmpfs) and removed.
/// The step captures beside it stay until the next start (`pyagent down --purge` removes them).
pub(super) fn release_workspace(root: &std::path::Path, task: &str) {
    let dir = root.join(task);
    if !dir.exists() {
        return;
    }
    if is_mount_point(&dir).unwrap_or(false) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status();
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a task's workspace");
    }
}
