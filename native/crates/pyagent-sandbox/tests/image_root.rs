//! A run in an image's root file system (`SandboxSpec::root`): the command sees the image, not
//! the host, the root stays read-only, and a host without namespaces refuses rather than run
//! the command on the host's root. Needs root, bwrap and busybox-static (.ci/install-sandbox.sh).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use pyagent_sandbox::IsolationLevel;

/// A minimal image root: busybox (static) and its applets, and a marker file.
fn busybox_root(dir: &TestDir) -> PathBuf {
    let root = dir.sub("rootfs");
    for d in ["bin", "etc", "usr"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox: run .ci/install-sandbox.sh (busybox-static)");
    for applet in ["sh", "cat", "ls", "touch", "test", "id"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/marker"), "inside the image\n").unwrap();
    root
}

fn in_root(root: &Path, script: &str, ws: &Path) -> pyagent_sandbox::SandboxSpec {
    let mut s = sh(IsolationLevel::Namespaces, script, ws);
    s.root = Some(root.to_path_buf());
    s
}

#[tokio::test]
async fn the_command_sees_the_image_and_not_the_host() {
    if !require_host() {
        return;
    }
    let dir = TestDir::new("image-root");
    let root = busybox_root(&dir);
    let ws = dir.sub("ws");
    let script = "cat /etc/marker; test -e /etc/debian_version && echo HOST-ETC; \
                  test -e /usr/bin/python3 && echo HOST-USR; touch /etc/x 2>/dev/null || echo READ-ONLY; \
                  echo data > /workspace/out; ls /";
    let o = run(&in_root(&root, script, &ws)).await;
    let out = text(&o.stdout);
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    assert!(out.contains("inside the image"), "{out}");
    assert!(!out.contains("HOST-"), "the host's root is visible: {out}");
    assert!(out.contains("READ-ONLY"), "{out}");
    assert_eq!(std::fs::read_to_string(ws.join("out")).unwrap(), "data\n");
}

#[tokio::test]
async fn without_namespaces_an_image_is_refused_not_ignored() {
    if !require_host() {
        return;
    }
    let dir = TestDir::new("image-fallback");
    let root = busybox_root(&dir);
    let ws = dir.sub("ws");
    let mut s = in_root(&root, "cat /etc/marker", &ws);
    s.min_isolation = IsolationLevel::LandlockSeccomp;
    s.max_isolation = IsolationLevel::LandlockSeccomp;
    let e = pyagent_sandbox::run(&s).await.unwrap_err();
    assert!(
        matches!(
            e.code(),
            "sandbox.invalid_spec" | "sandbox.isolation_below_minimum"
        ),
        "{e} [{}]",
        e.code()
    );
}
