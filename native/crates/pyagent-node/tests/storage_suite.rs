//! openraft's own storage test suite, run against our log store and state machine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::ErrorSubject;
use pyagent_node::sm::StateMachineStore;
use pyagent_node::storage::LogStore;
use pyagent_node::types::{StorageError, TypeConfig};

/// Removes the store's directory when a test is done with it.
pub struct Guard(PathBuf);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Builder;
static N: AtomicU64 = AtomicU64::new(0);

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, LogStore, StateMachineStore), StorageError> {
        let dir = std::env::temp_dir().join(format!(
            "pyagent-suite-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let io = |e: std::io::Error| {
            StorageError::from_io_error(ErrorSubject::Store, openraft::ErrorVerb::Write, e)
        };
        let log = LogStore::open(&dir.join("raft")).map_err(io)?;
        let sm = StateMachineStore::open(&dir.join("snapshots"), "suite".into(), 2).map_err(io)?;
        Ok((Guard(dir), log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(Suite::test_all(Builder))
        .unwrap();
}
