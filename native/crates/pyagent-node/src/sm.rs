//! The openraft state machine over [`SwarmState`], with durable snapshots in `snapshots/`
//! (`snap-<term>-<index>.bin` = `[blake3][msgpack(SnapshotFile)]`, written atomically).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::state::SwarmState;
use crate::storage::{decode_checked, encode_checked, write_atomic};
use crate::types::{LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    #[serde(with = "crate::types::serde_bytes_vec")]
    data: Vec<u8>,
}

fn sm_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

pub type SharedState = Arc<RwLock<SwarmState>>;

pub fn read_state(s: &SharedState) -> std::sync::RwLockReadGuard<'_, SwarmState> {
    s.read().unwrap_or_else(|p| p.into_inner())
}

fn write_state(s: &SharedState) -> std::sync::RwLockWriteGuard<'_, SwarmState> {
    s.write().unwrap_or_else(|p| p.into_inner())
}

/// The Raft group of this node: openraft driving this state machine (types.rs stays free of it,
/// so the state machine can depend on the types without a cycle).
pub type Raft = openraft::Raft<TypeConfig, StateMachineStore>;

pub struct StateMachineStore {
    pub state: SharedState,
    pub sigs: Arc<crate::auth::SigCache>,
    swarm: String,
    dir: PathBuf,
    kept: usize,
}

pub struct SnapshotBuilder {
    state: SharedState,
    dir: PathBuf,
    kept: usize,
}

fn snapshot_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap-") && n.ends_with(".bin"))
        })
        .collect();
    out.sort(); // zero-padded names sort by (term, index)
    Ok(out)
}

fn newest_valid(dir: &Path) -> io::Result<Option<SnapshotFile>> {
    for path in snapshot_files(dir)?.into_iter().rev() {
        match fs::read(&path).and_then(|b| decode_checked::<SnapshotFile>(&b)) {
            Ok(f) => return Ok(Some(f)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping a corrupt snapshot")
            }
        }
    }
    Ok(None)
}

fn persist(dir: &Path, kept: usize, file: &SnapshotFile) -> io::Result<()> {
    let (term, index) = file
        .meta
        .last_log_id
        .map(|l| (l.leader_id.term, l.index))
        .unwrap_or((0, 0));
    let path = dir.join(format!("snap-{term:020}-{index:020}.bin"));
    write_atomic(&path, &encode_checked(file)?)?;
    // Older snapshots go only once this one reads back and checks out: if it did not, the
    // previous ones are what a restart can still start from (and openraft purges the log only
    // after this call succeeded).
    if let Err(e) = fs::read(&path).and_then(|b| decode_checked::<SnapshotFile>(&b)) {
        let _ = fs::remove_file(&path);
        return Err(io::Error::other(format!(
            "snapshot {} does not read back ({e}); older snapshots kept",
            path.display()
        )));
    }
    let files = snapshot_files(dir)?;
    if files.len() > kept {
        for old in &files[..files.len() - kept] {
            let _ = fs::remove_file(old);
        }
    }
    Ok(())
}

impl StateMachineStore {
    pub fn open(dir: &Path, swarm: String, kept: u64) -> io::Result<StateMachineStore> {
        fs::create_dir_all(dir)?;
        let state = match newest_valid(dir)? {
            Some(f) => {
                let mut st: SwarmState =
                    rmp_serde::from_slice(&f.data).map_err(io::Error::other)?;
                st.last_applied = f.meta.last_log_id;
                st.last_membership = f.meta.last_membership;
                st
            }
            None => SwarmState::default(),
        };
        Ok(StateMachineStore {
            state: Arc::new(RwLock::new(state)),
            sigs: Arc::default(),
            swarm,
            dir: dir.to_path_buf(),
            kept: kept.max(1) as usize,
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (data, last, membership) = {
            let st = read_state(&self.state);
            (
                rmp_serde::to_vec(&*st).map_err(sm_err)?,
                st.last_applied,
                st.last_membership.clone(),
            )
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        let (dir, kept) = (self.dir.clone(), self.kept);
        let file = tokio::task::spawn_blocking(move || persist(&dir, kept, &file).map(|_| file))
            .await
            .map_err(sm_err)?
            .map_err(sm_err)?;
        Ok(Snapshot {
            meta,
            snapshot: file.data,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let st = read_state(&self.state);
        Ok((st.last_applied, st.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // The whole committed range is read first so that its signatures are checked in one batch
        // (as under 0.9, where apply got all the entries at once); the stream is finite.
        let mut items = Vec::new();
        while let Some(item) = entries.next().await {
            items.push(item?);
        }
        let mut st = write_state(&self.state);
        let commands = items.iter().flat_map(|(e, _)| match &e.payload {
            EntryPayload::Normal(batch) => batch.0.as_slice(),
            _ => &[],
        });
        st.preverify(&self.swarm, commands, &self.sigs);
        for (entry, responder) in items {
            let log_id = entry.log_id;
            st.last_applied = Some(log_id);
            let result = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(batch) => batch
                    .0
                    .iter()
                    .map(|cmd| st.apply_command_with(&self.sigs, &self.swarm, log_id, cmd))
                    .collect(),
                EntryPayload::Membership(m) => {
                    st.last_membership = StoredMembership::new(Some(log_id), m);
                    Vec::new()
                }
            };
            if let Some(r) = responder {
                r.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            dir: self.dir.clone(),
            kept: self.kept,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot;
        let mut new: SwarmState = rmp_serde::from_slice(&data).map_err(sm_err)?;
        new.last_applied = meta.last_log_id;
        new.last_membership = meta.last_membership.clone();
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        let (dir, kept) = (self.dir.clone(), self.kept);
        tokio::task::spawn_blocking(move || persist(&dir, kept, &file))
            .await
            .map_err(sm_err)?
            .map_err(sm_err)?;
        *write_state(&self.state) = new;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let dir = self.dir.clone();
        let file = tokio::task::spawn_blocking(move || newest_valid(&dir))
            .await
            .map_err(sm_err)?
            .map_err(sm_err)?;
        Ok(file.map(|f| Snapshot {
            meta: f.meta,
            snapshot: f.data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::RaftSnapshotBuilder as _;

    use super::*;
    use crate::testutil::TempDir;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn snapshots_round_trip_prune_and_skip_corruption() {
        let dir = TempDir::new("snap");
        let sm = StateMachineStore::open(dir.path(), "s".into(), 2).unwrap();
        rt().block_on(async {
            let mut sm = sm;
            for i in 1..=3u64 {
                {
                    let mut st = write_state(&sm.state);
                    st.last_applied = Some(crate::types::log_id(1, 1, i * 10));
                    st.kv.insert(
                        format!("k{i}"),
                        crate::state::Value {
                            bytes: vec![i as u8],
                            revision: i * 10,
                        },
                    );
                }
                sm.get_snapshot_builder()
                    .await
                    .build_snapshot()
                    .await
                    .unwrap();
            }
            // two kept, the newest is index 30
            assert_eq!(snapshot_files(dir.path()).unwrap().len(), 2);
            let cur = sm.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(cur.meta.last_log_id.unwrap().index, 30);
        });
        let reopened = StateMachineStore::open(dir.path(), "s".into(), 2).unwrap();
        assert_eq!(read_state(&reopened.state).kv.len(), 3);
        // flip a byte in the newest snapshot: it is skipped, the previous one loads
        let newest = snapshot_files(dir.path()).unwrap().pop().unwrap();
        let mut bytes = fs::read(&newest).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        fs::write(&newest, bytes).unwrap();
        let reopened = StateMachineStore::open(dir.path(), "s".into(), 2).unwrap();
        let st = read_state(&reopened.state);
        assert_eq!(st.last_applied.unwrap().index, 20);
        assert_eq!(st.kv.len(), 2);
    }
}
