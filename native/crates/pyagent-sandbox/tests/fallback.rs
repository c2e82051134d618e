//! Where user namespaces are refused to the sandbox user, the run falls back, says so, and
//! refuses to run below the caller's minimum. One test in its own binary: it points the crate at
//! a stand-in bwrap (PYAGENT_SANDBOX_BWRAP) before the crate's one-time probe.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use pyagent_sandbox::IsolationLevel;

#[tokio::test]
async fn refused_namespaces_fall_back_and_respect_the_minimum() {
    if !require_host() {
        return;
    }
    let root = TestDir::new("fallback");
    let ws = root.sub("ws");
    // Root (the probe) gets the real bwrap; nobody (the runs) gets what an unprivileged user
    // gets on hosts with kernel.unprivileged_userns_clone=0 or AppArmor's userns restriction.
    let real = pyagent_sandbox::probe().bwrap.expect("bwrap");
    let fake = root.0.join("bwrap");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$(id -u)\" = 0 ]; then exec {} \"$@\"; fi\n\
             echo 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Before the first probe of this process (this binary has no other test).
    std::env::set_var("PYAGENT_SANDBOX_BWRAP", &fake);
    assert!(
        pyagent_sandbox::probe().namespaces,
        "root's probe should pass through"
    );

    let mut s = sh(IsolationLevel::Namespaces, "echo ran", &ws);
    s.min_isolation = IsolationLevel::LandlockSeccomp;
    let o = pyagent_sandbox::run(&s).await.unwrap();
    assert_eq!(o.isolation, IsolationLevel::LandlockSeccomp, "{o:?}");
    assert_eq!(text(&o.stdout), "ran\n");
    let why = o.fallback_reason.unwrap_or_default();
    assert!(
        why.contains("uid map"),
        "the reason should carry bwrap's error: {why:?}"
    );

    // Later runs go straight to the fallback (remembered), and a caller that requires
    // namespaces gets a clear error, not a run.
    s.min_isolation = IsolationLevel::Namespaces;
    s.argv = vec!["/bin/sh".into(), "-c".into(), "echo RAN > ./ran".into()];
    let e = pyagent_sandbox::run(&s).await.unwrap_err();
    assert_eq!(e.code(), "sandbox.isolation_below_minimum", "{e}");
    assert!(e.to_string().contains("landlock_seccomp"), "{e}");
    assert!(!ws.join("ran").exists(), "it ran anyway");
}
