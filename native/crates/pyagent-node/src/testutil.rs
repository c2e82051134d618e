//! Test helpers: a self-removing temporary directory (no extra crate needed), log entries.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct TempDir(PathBuf);

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("pyagent-node-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A log entry (term 1, led by node 1) holding one command of `command_bytes` bytes.
pub fn entry_with_command(index: u64, command_bytes: usize) -> crate::types::Entry {
    let command = crate::types::LogCommand {
        signer: 1,
        seq: index,
        command: vec![1; command_bytes],
        signature: vec![7; 64],
        proposed_at_ms: 0,
    };
    crate::types::Entry {
        log_id: crate::types::log_id(1, 1, index),
        payload: openraft::EntryPayload::Normal(crate::types::Batch(vec![command])),
    }
}
