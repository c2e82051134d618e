//! No bwrap on the host: a coded error with the install hint, unless the caller asked for less
//! than namespaces. Its own binary: it hides bwrap before the crate's one-time probe.

mod common;

use common::*;
use pyagent_sandbox::IsolationLevel;

#[tokio::test]
async fn missing_bwrap_is_a_coded_error_with_a_hint() {
    let root = TestDir::new("nobwrap");
    let ws = root.sub("ws");
    std::env::set_var("PYAGENT_SANDBOX_BWRAP", root.0.join("no-bwrap-here"));
    assert_eq!(pyagent_sandbox::probe().bwrap, None);

    let mut s = sh(IsolationLevel::Namespaces, "true", &ws);
    s.min_isolation = IsolationLevel::LimitsOnly;
    let e = pyagent_sandbox::run(&s).await.unwrap_err();
    assert_eq!(e.code(), "sandbox.tool_missing");
    assert!(
        e.hint().contains("apt-get install bubblewrap"),
        "{}",
        e.hint()
    );

    // Without bwrap the fallback still works for a caller that asks for it.
    if rustix::process::geteuid().as_raw() == 0 && pyagent_sandbox::probe().landlock {
        let o = run(&sh(IsolationLevel::LandlockSeccomp, "echo ok", &ws)).await;
        assert_eq!(text(&o.stdout), "ok\n");
    }
}
