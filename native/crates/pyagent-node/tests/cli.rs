//! The binary's contract: keygen is idempotent and private, bad configuration exits 2 with one
//! line naming the key (no panic, no backtrace), --version works.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pyagent-node"))
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(tag: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("pyagent-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    Dir(p)
}

#[test]
fn version() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pyagent-node "));
}

#[test]
fn keygen_is_idempotent() {
    let d = tmp("keygen");
    let data = d.0.join("data");
    let a = bin()
        .args(["keygen", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let b = bin()
        .args(["keygen", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(String::from_utf8_lossy(&a.stdout).trim().len(), 44); // base64 of 32 bytes
}

fn run_with(config: &str) -> (i32, String) {
    let d = tmp(&format!("run-{}", config.len()));
    let path = d.0.join("node.json");
    std::fs::write(&path, config).unwrap();
    let out = bin()
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let (code, err) = run_with("{");
    assert_eq!(code, 2);
    assert!(err.contains("invalid JSON"), "{err}");
    let base = r#"{"apiVersion":"pyagent.dev/node/v1alpha3","swarm":"s","pool":"p","roles":[],"cores":[],
        "dataDir":"d","ports":{"mesh":4,"raft":1,"grpc":2,"metrics":3},"listen":null,
        "discovery":{"mode":"static","dns":null,"seeds":[],"neighbours":8},
        "membership":{"mode":"static","nodeId":1,"name":"n1","join":false,"members":[
            {"nodeId":1,"name":"n1","raft":"127.0.0.1:1","grpc":"127.0.0.1:2","voter":true,"publicKey":null}]},
        "consensus":{"electionTimeoutMs":[150,300],"heartbeatMs":50,"snapshotEveryEntries":10,"snapshotsKept":2},
        "memory":{"kv":{"blockSize":16,"blocks":8,"eviction":"lru","ttlSeconds":null},"decayHalfLifeSeconds":60},
        "sovereignty":{"jurisdiction":null,"ownerPublicKey":null,"soulKeyFile":null,"peerShare":"none","trustedPeers":[]},
        "runtime":{"workerThreads":null}}"#;
    let (code, err) = run_with(base);
    assert_eq!(code, 2);
    assert!(err.contains("members[0].publicKey"), "{err}");
    let keyed = base.replace(
        "\"publicKey\":null",
        "\"publicKey\":\"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=\"",
    );
    let (code, err) = run_with(&keyed.replace(
        r#""electionTimeoutMs":[150,300]"#,
        r#""electionTimeoutMs":[300,150]"#,
    ));
    assert_eq!(code, 2);
    assert!(err.contains("consensus.electionTimeoutMs"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let out = bin()
        .args(["run", "--config", "/nonexistent/node.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/node.json"));
    let out = bin().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
