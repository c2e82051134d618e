//! Durable Raft log: one append-only file of checksummed msgpack records, written by a single
//! thread that group-commits (every batch of appends waiting in its queue is written, then
//! fdatasync'ed once, then acknowledged to openraft).
//!
//! Record: `[u32 LE payload length][32-byte blake3(payload)][payload = msgpack(Entry)]`.
//! The file is grown ahead of its records, [`PREALLOC`] bytes at a time (a hole that reads as
//! zeros), so an fdatasync after an append need not also make a new file size durable: ~110
//! instead of ~165 us per fsync on this machine's ext4 (etcd preallocates its WAL segments for
//! the same reason). A zero header is where the records end.
//! On open, the first record that does not check out (short, bad checksum, undecodable, or not
//! the next index) ends the log: the file is cut there (anything after it is dropped, counted
//! and logged unless it is the zeros of the preallocated space), never silently loaded.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{Entry, LogId, TypeConfig, Vote};

pub const LOG_FILE: &str = "log.dat";
pub const VOTE_FILE: &str = "vote.bin";
pub const PURGED_FILE: &str = "purged.bin";
pub const COMMITTED_FILE: &str = "committed.bin";
/// In the data dir, beside `raft/`: written once this node holds Raft state, so that a `raft/`
/// found empty later is known to have been lost, not never written (recovery.rs).
pub const STATE_MARKER: &str = "raft-state.marker";
const STATE_MARKER_TEXT: &[u8] =
    b"pyagent: this data dir holds Raft state in raft/ and snapshots/\n";
/// How often the committed hint is written at most.
const HINT_EVERY: Duration = Duration::from_millis(100);
const HEADER: usize = 4 + 32;
/// Refuse records larger than this when reading (a corrupt length must not allocate 4 GiB).
const MAX_RECORD: usize = 256 << 20;
/// Bytes the log file is grown by ahead of its records, when they reach its end.
pub const PREALLOC: u64 = 8 << 20;
/// Rewrite the log file without its purged prefix once the prefix is this large.
const COMPACT_BYTES: u64 = 16 << 20;

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// `[blake3][msgpack]` encoding for small files (vote, purged id, snapshots).
pub fn encode_checked<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    let body = rmp_serde::to_vec(v).map_err(other)?;
    let mut out = Vec::with_capacity(32 + body.len());
    out.extend_from_slice(blake3::hash(&body).as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn decode_checked<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    if bytes.len() < 32 {
        return Err(other("file too short"));
    }
    let (sum, body) = bytes.split_at(32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(other("checksum mismatch"));
    }
    rmp_serde::from_slice(body).map_err(other)
}

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| other("no parent directory"))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fsync_dir(dir)
}

fn read_small<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => decode_checked(&b).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Like [`read_small`], but a file that exists and does not decode is reported as damage
/// (`Err` of the inner result) rather than as an error: the caller decides what it may still do.
fn read_small_or_damage<T: DeserializeOwned>(path: &Path) -> io::Result<Result<Option<T>, String>> {
    match fs::read(path) {
        Ok(b) => Ok(decode_checked(&b)
            .map(Some)
            .map_err(|e| format!("{} unreadable ({e})", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Ok(None)),
        Err(e) => Err(e),
    }
}

pub fn encode_record(entry: &Entry) -> io::Result<Vec<u8>> {
    let payload = rmp_serde::to_vec(entry).map_err(other)?;
    let mut rec = Vec::with_capacity(HEADER + payload.len());
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    rec.extend_from_slice(blake3::hash(&payload).as_bytes());
    rec.extend_from_slice(&payload);
    Ok(rec)
}

/// Result of scanning a log file: the valid entries with their offsets, and where validity ends.
pub struct Scan {
    pub entries: Vec<(u64, Entry)>,
    pub valid_len: u64,
    pub file_len: u64,
    pub why_stopped: Option<String>,
}

/// Parses records from `bytes`, stopping at the first one that does not check out.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut entries: Vec<(u64, Entry)> = Vec::new();
    let mut pos = 0usize;
    let mut why = None;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest[..rest.len().min(HEADER)].iter().all(|b| *b == 0) {
            break; // the end of the records: the preallocated space reads as zeros
        }
        if rest.len() < HEADER {
            why = Some(format!("torn header at byte {pos}"));
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_RECORD || rest.len() < HEADER + len {
            why = Some(format!("torn or corrupt record at byte {pos}"));
            break;
        }
        let payload = &rest[HEADER..HEADER + len];
        if blake3::hash(payload).as_bytes() != &rest[4..HEADER] {
            why = Some(format!("checksum mismatch at byte {pos}"));
            break;
        }
        let entry: Entry = match rmp_serde::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                why = Some(format!("undecodable record at byte {pos}: {e}"));
                break;
            }
        };
        if let Some((_, prev)) = entries.last() {
            if entry.log_id.index != prev.log_id.index + 1 {
                why = Some(format!(
                    "index {} follows {} at byte {pos}",
                    entry.log_id.index, prev.log_id.index
                ));
                break;
            }
        }
        entries.push((pos as u64, entry));
        pos += HEADER + len;
    }
    Scan {
        entries,
        valid_len: pos as u64,
        file_len: bytes.len() as u64,
        why_stopped: why,
    }
}

/// Counters exported on /metrics.
#[derive(Debug, Default)]
pub struct LogStats {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub appended: AtomicU64,
    pub truncated_bytes: AtomicU64,
}

#[derive(Default)]
struct Mem {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

enum Op {
    Append(Vec<Entry>, IOFlushed<TypeConfig>),
    Truncate(u64, mpsc::SyncSender<io::Result<()>>),
    Purge(LogId, mpsc::SyncSender<io::Result<()>>),
    Vote(Vote, mpsc::SyncSender<io::Result<()>>),
    #[cfg(test)]
    Sync(mpsc::SyncSender<()>),
}

/// The openraft log storage. Cloning shares the same log.
#[derive(Clone)]
pub struct LogStore {
    mem: Arc<Mutex<Mem>>,
    tx: mpsc::Sender<Op>,
    /// The latest committed id not yet written to disk, for the writer to pick up.
    hint: Arc<Mutex<Option<Option<LogId>>>>,
    pub stats: Arc<LogStats>,
    damage: Arc<Vec<String>>,
    /// Whether the vote this node last saved may be lost (see [`LogStore::vote_lost`]).
    vote_lost: bool,
}

struct Writer {
    dir: PathBuf,
    file: File,
    hint: Arc<Mutex<Option<Option<LogId>>>>,
    /// Offset of each record still in the file.
    offsets: BTreeMap<u64, u64>,
    end: u64,
    /// The file's length: `end` plus the preallocated space.
    allocated: u64,
    stats: Arc<LogStats>,
    /// The data dir's [`STATE_MARKER`], until it is written (with the first vote or append).
    marker: Option<PathBuf>,
}

/// Cuts the file at `end` (dropping whatever follows) and preallocates [`PREALLOC`] after it.
fn cut_and_preallocate(file: &File, end: u64) -> io::Result<u64> {
    file.set_len(end)?;
    file.set_len(end + PREALLOC)?;
    file.sync_all()?;
    Ok(end + PREALLOC)
}

/// Whether the non-zero bytes after the valid records (`tail`, `dropped` of them, then the
/// preallocated zeros; `why` the scan stopped) can be a write torn by a crash rather than damage
/// to written data. A record is acknowledged only after its batch was fsynced, so a torn write
/// never held an acknowledged entry; and a torn write into the preallocated space (a hole that
/// reads as zeros) leaves the record incomplete: its last bytes never reached the disk.
/// Everything else is damage: a whole, valid record after the bad one (a bit flip or lost bytes
/// mid-log), a whole last record whose checksum fails (a flip in it), one that checks out but
/// does not decode or does not follow, a length larger than this store writes, and a record that
/// only looks incomplete because one bit of it flipped ([`one_flip_from_valid`]).
fn torn_write(tail: &[u8], dropped: u64, why: &str) -> bool {
    if why.starts_with("undecodable") || why.starts_with("index") {
        return false;
    }
    let nonzero = &tail[..dropped as usize];
    if (1..nonzero.len()).any(|pos| valid_record_at(nonzero, pos)) {
        return false;
    }
    if nonzero.len() < HEADER {
        return true;
    }
    let len = u32::from_le_bytes([nonzero[0], nonzero[1], nonzero[2], nonzero[3]]) as usize;
    len <= MAX_RECORD && HEADER + len > nonzero.len() && !one_flip_from_valid(tail)
}

/// Payloads up to this size are searched bit by bit for a flip ([`one_flip_from_valid`]): 32 Ki
/// hashes of 4 KiB, some tens of milliseconds, and only at a start-up that found a bad tail.
const FLIP_SEARCH_MAX: usize = 4096;

/// Whether the record at the start of `tail` is one flipped bit away from a whole record whose
/// checksum matches: in its length field (a flip that made it longer reaches into the zeros
/// after it and looks like a torn write), in its checksum, or in a payload of up to
/// [`FLIP_SEARCH_MAX`] bytes (a payload that ends in zeros also looks incomplete). A torn write
/// is not one flip away: the part of it that never reached the disk reads as whole runs of
/// zeros, and were those its real bytes, the record would be whole and valid. Larger payloads
/// whose last bytes are zeros stay ambiguous (docs/raft-recovery.md).
fn one_flip_from_valid(tail: &[u8]) -> bool {
    let Some(header) = tail.get(..HEADER) else {
        return false;
    };
    let stored = &header[4..HEADER];
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let hashes_to_stored = |payload: &[u8]| blake3::hash(payload).as_bytes() == stored;
    let length_flipped = (0..32).map(|bit| len ^ (1 << bit)).any(|other| {
        other > 0
            && other <= MAX_RECORD
            && tail
                .get(HEADER..HEADER + other)
                .is_some_and(hashes_to_stored)
    });
    if length_flipped {
        return true;
    }
    let Some(payload) = tail.get(HEADER..HEADER + len) else {
        return false;
    };
    let actual = blake3::hash(payload);
    let checksum_flipped = actual
        .as_bytes()
        .iter()
        .zip(stored)
        .map(|(a, b)| (a ^ b).count_ones())
        .sum::<u32>()
        == 1;
    if checksum_flipped || len > FLIP_SEARCH_MAX {
        return checksum_flipped;
    }
    let mut candidate = payload.to_vec();
    (0..len * 8).any(|bit| {
        candidate[bit / 8] ^= 1 << (bit % 8);
        let found = hashes_to_stored(&candidate);
        candidate[bit / 8] ^= 1 << (bit % 8);
        found
    })
}

/// Whether a whole record with a matching checksum starts at `pos` of `buf`. Only candidates
/// whose payload starts as every entry does (msgpack fixarray of 2: log id, payload) are
/// hashed, so a search over megabytes stays cheap.
fn valid_record_at(buf: &[u8], pos: usize) -> bool {
    let Some(h) = buf.get(pos..pos + HEADER) else {
        return false;
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let Some(payload) = buf.get(pos + HEADER..).and_then(|b| b.get(..len)) else {
        return false;
    };
    len > 0 && payload[0] == 0x92 && blake3::hash(payload).as_bytes() == &h[4..HEADER]
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Op>) {
        // The committed id is a hint (openraft re-learns it from the leader), so it is written at
        // most every HINT_EVERY and when the writer stops, from a slot `save_committed` fills: a
        // message per commit woke this thread between the fsyncs on every write's path (and, on
        // a busy machine, took a core from the task answering the client).
        let mut hint_written = Instant::now();
        loop {
            let first = match rx.recv_timeout(HINT_EVERY) {
                Ok(op) => op,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.write_hint(&mut hint_written);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while let Ok(op) = rx.try_recv() {
                batch.push(op);
            }
            let mut buf = Vec::new();
            let mut pending: Vec<IOFlushed<TypeConfig>> = Vec::new();
            let mut failed: Option<String> = None;
            for op in batch {
                match op {
                    Op::Append(entries, cb) => {
                        for e in entries {
                            match encode_record(&e) {
                                Ok(rec) => {
                                    self.offsets
                                        .insert(e.log_id.index, self.end + buf.len() as u64);
                                    buf.extend_from_slice(&rec);
                                }
                                Err(err) => failed = Some(err.to_string()),
                            }
                            self.stats.appended.fetch_add(1, Ordering::Relaxed);
                        }
                        pending.push(cb);
                    }
                    other_op => {
                        // Everything else is ordered after the appends before it.
                        self.flush(&mut buf, &mut pending, &mut failed);
                        self.other(other_op);
                    }
                }
            }
            self.flush(&mut buf, &mut pending, &mut failed);
            if hint_written.elapsed() >= HINT_EVERY {
                self.write_hint(&mut hint_written);
            }
        }
        self.write_hint(&mut hint_written);
    }

    /// Writes the data dir's [`STATE_MARKER`] the first time this node holds Raft state.
    fn mark(&mut self) {
        if let Some(m) = self.marker.take() {
            if let Err(e) = write_atomic(&m, STATE_MARKER_TEXT) {
                tracing::warn!(path = %m.display(), error = %e, "cannot write the state marker");
                self.marker = Some(m);
            }
        }
    }

    fn write_hint(&self, written: &mut Instant) {
        let hint = self.hint.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(c) = hint {
            if let Ok(b) = encode_checked(&c) {
                let _ = fs::write(self.dir.join(COMMITTED_FILE), b);
            }
        }
        *written = Instant::now();
    }

    fn flush(
        &mut self,
        buf: &mut Vec<u8>,
        pending: &mut Vec<IOFlushed<TypeConfig>>,
        failed: &mut Option<String>,
    ) {
        if pending.is_empty() && buf.is_empty() {
            return;
        }
        let res = if let Some(f) = failed.take() {
            Err(other(f))
        } else {
            self.grow_for(buf.len() as u64)
                .and_then(|_| self.file.write_all_at(buf, self.end))
                .and_then(|_| self.file.sync_data())
        };
        if res.is_ok() {
            self.end += buf.len() as u64;
            self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.publish();
            self.mark();
        }
        buf.clear();
        for cb in pending.drain(..) {
            cb.io_completed(match &res {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
    }

    /// Makes room for `more` bytes after `end`: the file grows a chunk at a time, so most
    /// fsyncs find its length unchanged.
    fn grow_for(&mut self, more: u64) -> io::Result<()> {
        // At least a header's worth of zeros stays after the records: a file that ends in
        // anything else was cut short (see `open_with`).
        if self.end + more + HEADER as u64 > self.allocated {
            let len = self.end + more + PREALLOC;
            self.file.set_len(len)?;
            self.allocated = len;
        }
        Ok(())
    }

    fn publish(&self) {
        self.stats.bytes.store(self.end, Ordering::Relaxed);
        self.stats
            .entries
            .store(self.offsets.len() as u64, Ordering::Relaxed);
    }

    fn other(&mut self, op: Op) {
        match op {
            Op::Append(..) => unreachable!("appends are batched"),
            Op::Truncate(index, reply) => {
                let res = (|| {
                    if let Some((_, &off)) = self.offsets.range(index..).next() {
                        self.allocated = cut_and_preallocate(&self.file, off)?;
                        self.end = off;
                        self.offsets.split_off(&index);
                    }
                    Ok(())
                })();
                self.publish();
                let _ = reply.send(res);
            }
            Op::Purge(log_id, reply) => {
                let res = self.purge(log_id);
                self.publish();
                let _ = reply.send(res);
            }
            Op::Vote(vote, reply) => {
                let res =
                    encode_checked(&vote).and_then(|b| write_atomic(&self.dir.join(VOTE_FILE), &b));
                if res.is_ok() {
                    self.mark();
                }
                let _ = reply.send(res);
            }
            #[cfg(test)]
            Op::Sync(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Durable first: after a crash, records at or below it are skipped on load.
        write_atomic(&self.dir.join(PURGED_FILE), &encode_checked(&log_id)?)?;
        let keep = self.offsets.split_off(&(log_id.index + 1));
        let dropped = std::mem::replace(&mut self.offsets, keep);
        if self.offsets.is_empty() {
            // Everything is purged (e.g. a snapshot was installed past our log): restart the
            // file, so that the next append does not leave a gap in indexes.
            self.allocated = cut_and_preallocate(&self.file, 0)?;
            self.end = 0;
            return Ok(());
        }
        let first = *self.offsets.values().next().unwrap_or(&0);
        if !dropped.is_empty() && first >= COMPACT_BYTES && first * 2 >= self.end {
            self.compact(first)?;
        }
        Ok(())
    }

    /// Rewrites the file without its first `cut` bytes (all purged), atomically.
    fn compact(&mut self, cut: u64) -> io::Result<()> {
        let path = self.dir.join(LOG_FILE);
        let tmp = self.dir.join("log.dat.compact");
        let mut src = File::open(&path)?;
        let mut bytes = Vec::new();
        src.read_to_end(&mut bytes)?;
        let tail = &bytes[cut as usize..self.end as usize];
        {
            let mut f = File::create(&tmp)?;
            f.write_all(tail)?;
            self.allocated = cut_and_preallocate(&f, tail.len() as u64)?;
        }
        fs::rename(&tmp, &path)?;
        fsync_dir(&self.dir)?;
        self.file = OpenOptions::new().read(true).write(true).open(&path)?;
        for off in self.offsets.values_mut() {
            *off -= cut;
        }
        self.end -= cut;
        Ok(())
    }
}

fn sio(e: impl std::fmt::Display) -> io::Error {
    other(e)
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, truncating a torn or corrupt tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        Self::open_inner(dir, None, None)
    }

    /// Opens the log in `dir` beside a state machine whose snapshot ends at `snapshot` (when
    /// known): a log purged past that snapshot cannot bring the state machine up to date (the
    /// newer snapshot it was purged for is lost or corrupt), so it is dropped, and the node
    /// starts from the snapshot and catches up from the leader, rather than not start at all.
    /// What was found lost or corrupt is in [`LogStore::damage`]; the data dir's
    /// [`STATE_MARKER`] (in `dir`'s parent) tells a lost state from a new node's.
    pub fn open_with(dir: &Path, snapshot: Option<LogId>) -> io::Result<LogStore> {
        Self::open_inner(
            dir,
            Some(snapshot),
            dir.parent().map(|d| d.join(STATE_MARKER)),
        )
    }

    fn open_inner(
        dir: &Path,
        snapshot: Option<Option<LogId>>,
        marker: Option<PathBuf>,
    ) -> io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let _ = fs::remove_file(dir.join("log.dat.compact"));
        let path = dir.join(LOG_FILE);
        let log_existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let scan = scan(&bytes);
        let stats = Arc::new(LogStats::default());
        let mut damage: Vec<String> = Vec::new();
        // Bytes after the records up to the last non-zero one: a torn write or damage. The
        // zeros after it are the preallocated space.
        let tail = &bytes[scan.valid_len as usize..];
        let dropped = tail
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i as u64 + 1);
        if dropped > 0 {
            let why = scan
                .why_stopped
                .as_deref()
                .unwrap_or("data after the end of the records");
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = dropped,
                reason = why,
                "truncating the Raft log to its last valid entry"
            );
            stats.truncated_bytes.store(dropped, Ordering::Relaxed);
            if !torn_write(tail, dropped, why) {
                let last = scan.entries.last().map_or(0, |(_, e)| e.log_id.index);
                damage.push(format!(
                    "log corrupt after index {last} ({why}; {dropped} bytes dropped)"
                ));
            }
        }
        // The writer keeps at least a header's worth of preallocated zeros after the records
        // (`Writer::grow_for`), and a crash cannot shorten the file below a length that was
        // synced: a file whose last bytes are not zeros was cut short (whole records may be
        // gone without a trace of them in what is left).
        if bytes.len() >= HEADER && bytes[bytes.len() - HEADER..].iter().any(|b| *b != 0) {
            damage.push(format!(
                "{LOG_FILE} was cut short (it ends at byte {} without its preallocated space)",
                bytes.len()
            ));
        }
        let marked = marker.as_deref().is_some_and(Path::exists);
        if marked && !log_existed {
            damage.push(format!("{LOG_FILE} is missing"));
        }
        let mut last_purged: Option<LogId> = match read_small_or_damage(&dir.join(PURGED_FILE))? {
            Ok(p) => p,
            Err(why) => {
                damage.push(why);
                None
            }
        };
        // Without a readable purged id the log's first index is unknown: it is dropped below.
        let purged_lost = damage.iter().any(|d| d.contains(PURGED_FILE));
        let vote: Option<Vote> = match read_small_or_damage(&dir.join(VOTE_FILE))? {
            Ok(v) => v,
            Err(why) => {
                damage.push(why);
                None
            }
        };
        let committed: Option<LogId> = read_small(&dir.join(COMMITTED_FILE)).unwrap_or(None);
        let vote_lost = marked && vote.is_none();
        if marked && vote.is_none() && !damage.iter().any(|d| d.contains(VOTE_FILE)) {
            damage.push(if scan.entries.is_empty() && last_purged.is_none() {
                "the Raft state is gone (raft/ is empty) though this data dir held it".to_string()
            } else {
                format!("{VOTE_FILE} is missing")
            });
        }
        let mut mem = Mem {
            last_purged,
            vote,
            committed,
            ..Default::default()
        };
        let mut offsets = BTreeMap::new();
        let mut end = scan.valid_len;
        let last_in_file = scan.entries.last().map(|(_, e)| e.log_id.index);
        if let (Some(p), Some(last)) = (last_purged, last_in_file) {
            if last <= p.index {
                // A crash between recording a purge past the end of the log and emptying the
                // file: finish the job, or the next append would leave a gap in indexes.
                end = 0;
            }
        }
        // The first entry kept must follow the purged id (the file may still hold purged
        // records before it); otherwise purged.bin was lost or replaced.
        let first_kept = scan
            .entries
            .iter()
            .map(|(_, e)| e.log_id.index)
            .find(|i| last_purged.is_none_or(|p| *i > p.index));
        // (Nothing purged: openraft's first entry is index 0, the initial membership.)
        let gap = end > 0
            && first_kept.is_some_and(|f| match last_purged {
                Some(p) => f != p.index + 1,
                None => f > 1,
            });
        if gap && !purged_lost {
            damage.push(format!(
                "the log starts at index {} but {PURGED_FILE} says {}",
                first_kept.unwrap_or(0),
                last_purged.map_or("nothing was purged".to_string(), |p| format!(
                    "entries up to {} were",
                    p.index
                ))
            ));
        }
        let purged_lost = purged_lost || gap;
        let snapshot_behind = match snapshot {
            Some(s) => last_purged.is_some_and(|p| s.is_none_or(|s| s.index < p.index)),
            None => false,
        };
        if snapshot_behind || purged_lost {
            if snapshot_behind {
                damage.push(format!(
                    "the log was purged up to index {} but the newest readable snapshot ends at {}",
                    last_purged.map_or(0, |p| p.index),
                    snapshot.flatten().map_or(0, |s| s.index)
                ));
            }
            // The log cannot be re-applied: start from the snapshot with an empty log.
            tracing::warn!(path = %path.display(), "dropping the Raft log: it does not follow the snapshot");
            end = 0;
            last_purged = snapshot.flatten();
            mem.last_purged = last_purged;
            mem.committed = None;
            match last_purged {
                Some(p) => write_atomic(&dir.join(PURGED_FILE), &encode_checked(&p)?)?,
                None => match fs::remove_file(dir.join(PURGED_FILE)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => fsync_dir(dir)?,
                },
            }
        }
        // Whatever follows the records goes (so nothing stale can be read back as a record
        // later), and the preallocated space starts after them.
        let allocated = cut_and_preallocate(&file, end)?;
        if end > 0 {
            for (off, e) in scan.entries {
                let idx = e.log_id.index;
                offsets.insert(idx, off);
                if last_purged.is_none_or(|p| idx > p.index) {
                    mem.entries.insert(idx, e);
                }
            }
        }
        // The committed id is a hint: never past the log we actually hold.
        let last_held = mem
            .entries
            .keys()
            .next_back()
            .copied()
            .or(last_purged.map(|p| p.index));
        if let Some(c) = mem
            .committed
            .filter(|c| last_held.is_none_or(|l| c.index > l))
        {
            // The hint is written after the entries it names were fsynced: entries this node
            // held (and acknowledged) are gone.
            damage.push(format!(
                "the log ends at index {} but index {} was known committed",
                last_held.unwrap_or(0),
                c.index
            ));
            mem.committed = None;
        }
        if committed.is_some() && mem.committed.is_none() {
            // Dropped above: a restart must not read it again (and find the same "damage").
            match fs::remove_file(dir.join(COMMITTED_FILE)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let has_state = mem.vote.is_some() || !mem.entries.is_empty() || last_purged.is_some();
        let marker = match marker {
            Some(m) if !marked && has_state => {
                write_atomic(&m, STATE_MARKER_TEXT)?;
                None
            }
            Some(m) if !marked => Some(m),
            _ => None,
        };
        let hint = Arc::new(Mutex::new(None));
        let writer = Writer {
            dir: dir.to_path_buf(),
            file,
            hint: hint.clone(),
            offsets,
            end,
            allocated,
            stats: stats.clone(),
            marker,
        };
        writer.publish();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(LogStore {
            mem: Arc::new(Mutex::new(mem)),
            tx,
            hint,
            stats,
            damage: Arc::new(damage),
            vote_lost,
        })
    }

    /// What opening found lost or corrupt, in a way that may have lost entries or votes this
    /// node acknowledged (a torn last write is not: it was never acknowledged). Empty: intact.
    pub fn damage(&self) -> &[String] {
        &self.damage
    }

    /// Whether the vote this node last saved may be lost: this data dir held Raft state but no
    /// vote was found (its file missing, unreadable, or the whole folder gone). Such a node may
    /// have granted a vote in a term it no longer knows, or accepted entries of that term, and
    /// must not take entries from a leader of an older term (recovery.rs).
    pub fn vote_lost(&self) -> bool {
        self.vote_lost
    }

    /// The vote as last written to disk (what openraft saved), for peers that ask a node whose
    /// vote was lost.
    pub fn durable_vote(&self) -> Option<Vote> {
        self.mem().vote
    }

    fn mem(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.mem.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn call(
        &self,
        make: impl FnOnce(mpsc::SyncSender<io::Result<()>>) -> Op,
    ) -> Result<(), io::Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .send(make(tx))
            .map_err(|_| sio("log writer stopped"))?;
        tokio::task::spawn_blocking(move || rx.recv())
            .await
            .map_err(sio)?
            .map_err(|_| sio("log writer stopped"))?
    }

    /// Waits until everything sent so far has been processed (tests).
    #[cfg(test)]
    pub fn sync_for_test(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx.send(Op::Sync(tx)).unwrap();
        rx.recv().unwrap();
    }

    /// The last committed index openraft told us about (0 when unknown).
    pub fn committed_index(&self) -> u64 {
        self.mem().committed.map(|c| c.index).unwrap_or(0)
    }

    /// Entries in memory (tests and metrics).
    pub fn entry_count(&self) -> usize {
        self.mem().entries.len()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self
            .mem()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }

    /// What replication reads to send a follower: up to `append::APPEND_MAX_BYTES` of entries
    /// (at least one), not openraft's default of the whole range (up to `max_payload_entries`,
    /// 300): with large values that cloned hundreds of MB under the log's lock for the network
    /// to send one MiB of it.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        let mem = self.mem();
        let range = || mem.entries.range(start..end).map(|(_, e)| e);
        let (n, bytes) = crate::append::append_prefix(range(), crate::append::APPEND_MAX_BYTES);
        if range().nth(n).is_some() {
            tracing::debug!(
                "replication reads {n} entries from {start} ({bytes} bytes), not up to {end}"
            );
        }
        Ok(range().take(n).cloned().collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.mem().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let mem = self.mem();
        let last = mem
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(mem.last_purged);
        Ok(LogState {
            last_purged_log_id: mem.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let v = *vote;
        self.call(|tx| Op::Vote(v, tx)).await?;
        self.mem().vote = Some(v);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.mem().committed = committed;
        *self.hint.lock().unwrap_or_else(|p| p.into_inner()) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.mem().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        {
            let mut mem = self.mem();
            for e in &entries {
                mem.entries.insert(e.log_id.index, e.clone());
            }
        }
        self.tx
            .send(Op::Append(entries, callback))
            .map_err(|_| sio("log writer stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        {
            let mut mem = self.mem();
            mem.entries.split_off(&first_removed);
        }
        self.call(|tx| Op::Truncate(first_removed, tx)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.call(|tx| Op::Purge(log_id, tx)).await?;
        let mut mem = self.mem();
        let keep = mem.entries.split_off(&(log_id.index + 1));
        mem.entries = keep;
        mem.last_purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::storage::RaftLogStorageExt;
    use openraft::{EntryPayload, Membership};
    use proptest::prelude::*;

    use super::*;
    use crate::testutil::TempDir;
    use crate::types::{LogCommand, Member};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn lid(term: u64, index: u64) -> LogId {
        crate::types::log_id(term, 1, index)
    }

    fn entry(index: u64) -> Entry {
        let payload = match index % 7 {
            0 => EntryPayload::Blank,
            3 => {
                let nodes = BTreeMap::from([(
                    1,
                    Member {
                        name: "a".into(),
                        raft: "r".into(),
                        grpc: "g".into(),
                        public_key: "k".into(),
                    },
                )]);
                EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], nodes).unwrap())
            }
            _ => EntryPayload::Normal(crate::types::Batch(
                (0..index % 3 + 1)
                    .map(|k| LogCommand {
                        signer: 1,
                        seq: index * 10 + k,
                        command: vec![index as u8; (index % 50) as usize],
                        signature: vec![7; 64],
                        proposed_at_ms: index * 10,
                    })
                    .collect(),
            )),
        };
        Entry {
            log_id: lid(1 + index / 10, index),
            payload,
        }
    }

    fn bytes_of(es: &[Entry]) -> Vec<Vec<u8>> {
        es.iter().map(|e| rmp_serde::to_vec(e).unwrap()).collect()
    }

    fn write(dir: &Path, n: u64) -> Vec<Entry> {
        let entries: Vec<Entry> = (1..=n).map(entry).collect();
        rt().block_on(async {
            let mut s = LogStore::open(dir).unwrap();
            // several appends, as openraft issues them
            for chunk in entries.chunks(5) {
                s.blocking_append(chunk.to_vec()).await.unwrap();
            }
        });
        entries
    }

    fn read_all(dir: &Path) -> (Vec<Entry>, LogStore) {
        rt().block_on(async {
            let mut s = LogStore::open(dir).unwrap();
            let es = s.try_get_log_entries(..).await.unwrap();
            (es, s)
        })
    }

    /// Replication reads at most a MiB of entries at a time, and always at least one.
    #[test]
    fn replication_reads_a_bounded_prefix() {
        let dir = TempDir::new("log-limited");
        rt().block_on(async {
            let mut s = LogStore::open(dir.path()).unwrap();
            let mut es = vec![crate::testutil::entry_with_command(1, 2 << 20)];
            es.extend((2..=11).map(|i| crate::testutil::entry_with_command(i, 300 << 10)));
            s.blocking_append(es).await.unwrap();
            let first = s.limited_get_log_entries(1, 12).await.unwrap();
            assert_eq!(first.len(), 1, "an entry above the bound comes alone");
            let next = s.limited_get_log_entries(2, 12).await.unwrap();
            assert_eq!(
                next.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
                [2, 3, 4]
            );
            let small = s.limited_get_log_entries(11, 12).await.unwrap();
            assert_eq!(small.len(), 1);
            assert!(s.limited_get_log_entries(12, 20).await.unwrap().is_empty());
        });
    }

    #[test]
    fn round_trip_vote_truncate_purge() {
        let dir = TempDir::new("log-rt");
        let written = write(dir.path(), 40);
        let (read, _) = read_all(dir.path());
        assert_eq!(bytes_of(&read), bytes_of(&written));
        rt().block_on(async {
            let mut s = LogStore::open(dir.path()).unwrap();
            let vote = openraft::Vote::new_committed(3, 2);
            s.save_vote(&vote).await.unwrap();
            s.truncate_after(Some(lid(3, 30))).await.unwrap(); // drop 31..=40
            s.purge(lid(1, 5)).await.unwrap(); // drop 1..=5
            s.blocking_append(vec![entry(31)]).await.unwrap();
        });
        rt().block_on(async {
            let mut s = LogStore::open(dir.path()).unwrap();
            assert_eq!(
                s.read_vote().await.unwrap(),
                Some(openraft::Vote::new_committed(3, 2))
            );
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(lid(1, 5)));
            assert_eq!(st.last_log_id.map(|l| l.index), Some(31));
            let es = s.try_get_log_entries(..).await.unwrap();
            assert_eq!(bytes_of(&es), bytes_of(&written[5..31]));
            // purging past the end (an installed snapshot) restarts the file cleanly
            s.purge(lid(9, 100)).await.unwrap();
            s.blocking_append(vec![Entry {
                log_id: lid(9, 101),
                payload: EntryPayload::Blank,
            }])
            .await
            .unwrap();
        });
        let (es, s) = read_all(dir.path());
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].log_id.index, 101);
        assert_eq!(s.stats.truncated_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn committed_hint_is_written_once_the_writer_is_idle() {
        let dir = TempDir::new("log-hint");
        write(dir.path(), 9);
        rt().block_on(async {
            let mut s = LogStore::open(dir.path()).unwrap();
            for i in 1..=9 {
                s.save_committed(Some(lid(1, i))).await.unwrap();
            }
            assert_eq!(s.read_committed().await.unwrap(), Some(lid(1, 9)));
            // only the last of a burst reaches the file, within HINT_EVERY of going idle
            std::thread::sleep(HINT_EVERY * 4);
            let on_disk: Option<LogId> = read_small(&dir.path().join(COMMITTED_FILE)).unwrap();
            assert_eq!(on_disk, Some(lid(1, 9)));
        });
        let (_, mut s) = read_all(dir.path());
        assert_eq!(rt().block_on(s.read_committed()).unwrap(), Some(lid(1, 9)));
    }

    #[test]
    fn crash_after_recording_a_purge_past_the_end() {
        let dir = TempDir::new("log-purge-crash");
        write(dir.path(), 5);
        // as if the process died right after purged.bin was written, before the file was emptied
        write_atomic(
            &dir.path().join(PURGED_FILE),
            &encode_checked(&lid(9, 100)).unwrap(),
        )
        .unwrap();
        rt().block_on(async {
            let mut s = LogStore::open(dir.path()).unwrap();
            assert_eq!(
                s.get_log_state().await.unwrap().last_log_id,
                Some(lid(9, 100))
            );
            s.blocking_append(vec![Entry {
                log_id: lid(9, 101),
                payload: EntryPayload::Blank,
            }])
            .await
            .unwrap();
        });
        let (es, _) = read_all(dir.path());
        assert_eq!(
            es.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![101]
        );
    }

    /// A node's data dir as `node::start` lays it out: the log in `raft/`, the marker beside.
    fn node_log(data: &Path, n: u64) -> (PathBuf, Vec<Entry>) {
        let raft = data.join("raft");
        let entries: Vec<Entry> = (1..=n).map(entry).collect();
        rt().block_on(async {
            let mut s = LogStore::open_with(&raft, None).unwrap();
            s.save_vote(&openraft::Vote::new_committed(3, 2))
                .await
                .unwrap();
            for chunk in entries.chunks(5) {
                s.blocking_append(chunk.to_vec()).await.unwrap();
            }
            s.save_committed(Some(lid(1, n))).await.unwrap();
        });
        // the committed hint reaches the disk once the writer is idle
        let hint = raft.join(COMMITTED_FILE);
        while read_small::<Option<LogId>>(&hint).ok().flatten().flatten() != Some(lid(1, n)) {
            std::thread::sleep(HINT_EVERY);
        }
        (raft, entries)
    }

    fn damage_of(raft: &Path, snapshot: Option<LogId>) -> Vec<String> {
        LogStore::open_with(raft, snapshot)
            .unwrap()
            .damage()
            .to_vec()
    }

    /// What counts as damage (the node then rejoins without voting: recovery.rs) and what does
    /// not: a clean restart, or a torn last write, which was never acknowledged.
    #[test]
    fn damage_is_told_from_a_torn_write() {
        let dir = TempDir::new("log-damage");
        let data = dir.path().join("clean");
        let (raft, entries) = node_log(&data, 30);
        assert!(data.join(STATE_MARKER).exists());
        assert_eq!(damage_of(&raft, None), Vec::<String>::new());

        // A torn write: half of a new record in the preallocated space.
        let end = *record_ends(&entries).last().unwrap();
        let rec = encode_record(&entry(31)).unwrap();
        let f = OpenOptions::new()
            .write(true)
            .open(raft.join(LOG_FILE))
            .unwrap();
        f.write_all_at(&rec[..rec.len() / 2], end).unwrap();
        drop(f);
        assert_eq!(damage_of(&raft, None), Vec::<String>::new());

        let flipped = |name: &str, at: fn(&[u64]) -> u64| {
            let data = dir.path().join(name);
            let (raft, entries) = node_log(&data, 30);
            let path = raft.join(LOG_FILE);
            let mut bytes = fs::read(&path).unwrap();
            let at = at(&record_ends(&entries)) as usize;
            bytes[at] ^= 0x04;
            fs::write(&path, &bytes).unwrap();
            damage_of(&raft, None)
        };
        // a payload byte of record 10, and a length byte of record 10
        let d = flipped("mid", |ends| ends[9] + HEADER as u64 + 2);
        assert!(d[0].starts_with("log corrupt after index 10"), "{d:?}");
        let d = flipped("len", |ends| ends[9] + 2);
        assert!(d[0].starts_with("log corrupt after index 10"), "{d:?}");
        // the last record: whole, so not a torn write
        let d = flipped("last", |ends| ends[28] + HEADER as u64 + 2);
        assert!(d[0].starts_with("log corrupt after index 29"), "{d:?}");

        // Whole records cut off the end (the file's preallocated zeros go with them).
        let data = dir.path().join("cut");
        let (raft, entries) = node_log(&data, 30);
        let ends = record_ends(&entries);
        OpenOptions::new()
            .write(true)
            .open(raft.join(LOG_FILE))
            .unwrap()
            .set_len(ends[26])
            .unwrap();
        let d = damage_of(&raft, None);
        assert!(d.iter().any(|d| d.contains("cut short")), "{d:?}");
        assert!(
            d.iter().any(|d| d.contains("index 30 was known committed")),
            "{d:?}"
        );

        // Files lost.
        for (name, file, said) in [
            ("vote", VOTE_FILE, "vote.bin is missing"),
            ("log", LOG_FILE, "log.dat is missing"),
        ] {
            let data = dir.path().join(name);
            let (raft, _) = node_log(&data, 30);
            fs::remove_file(raft.join(file)).unwrap();
            let d = damage_of(&raft, None);
            assert!(d.iter().any(|d| d.contains(said)), "{name}: {d:?}");
        }
        let data = dir.path().join("wiped");
        let (raft, _) = node_log(&data, 30);
        fs::remove_dir_all(&raft).unwrap();
        let d = damage_of(&raft, None);
        assert!(
            d.iter().any(|d| d.starts_with("the Raft state is gone")),
            "{d:?}"
        );
        // A new node (no marker) is not damaged.
        assert!(damage_of(&dir.path().join("new").join("raft"), None).is_empty());
    }

    /// A log purged past the newest readable snapshot cannot be re-applied (issue 24: "Cannot
    /// re-apply logs"): it is dropped, the purged id becomes the snapshot's, and the node starts.
    /// Appends record 31, whose payload ends in a zero byte (its last command was proposed at
    /// 0 ms), to a node's log of 30; returns the log folder and where record 31 starts.
    fn log_ending_in_zeros(data: &Path) -> (PathBuf, u64) {
        let (raft, entries) = node_log(data, 30);
        let zero_ending = Entry {
            log_id: lid(4, 31),
            payload: EntryPayload::Normal(crate::types::Batch(vec![LogCommand {
                signer: 1,
                seq: 310,
                command: vec![1; 20],
                signature: vec![7; 64],
                proposed_at_ms: 0,
            }])),
        };
        let rec = encode_record(&zero_ending).unwrap();
        assert_eq!(
            rec.last(),
            Some(&0),
            "the test needs a payload ending in zeros"
        );
        rt().block_on(async {
            let mut s = LogStore::open_with(&raft, None).unwrap();
            s.blocking_append(vec![zero_ending]).await.unwrap();
        });
        (raft, *record_ends(&entries).last().unwrap())
    }

    /// A flipped bit that makes the last record look incomplete (as a torn write does) is
    /// damage: in its length field (longer: it reaches into the preallocated zeros), in its
    /// checksum, or in a payload that ends in zeros. Unlike a torn write, each is one bit away
    /// from a whole, valid record.
    #[test]
    fn a_flip_that_looks_like_a_torn_write_is_damage() {
        let dir = TempDir::new("log-flip-torn");
        let (raft, _) = log_ending_in_zeros(&dir.path().join("intact"));
        assert_eq!(damage_of(&raft, None), Vec::<String>::new());
        for (name, offset, bit) in [
            ("length", 1, 4),           // the length grows by 4 KiB
            ("checksum", 4 + 17, 2),    // one bit of the blake3 hash
            ("payload", HEADER + 5, 6), // one bit inside the payload
        ] {
            let (raft, start) = log_ending_in_zeros(&dir.path().join(name));
            let path = raft.join(LOG_FILE);
            let mut bytes = fs::read(&path).unwrap();
            bytes[start as usize + offset] ^= 1 << bit;
            fs::write(&path, &bytes).unwrap();
            let d = damage_of(&raft, None);
            assert!(
                d.first()
                    .is_some_and(|d| d.starts_with("log corrupt after index 30")),
                "{name}: {d:?}"
            );
        }
    }

    #[test]
    fn a_log_purged_past_the_snapshot_is_dropped() {
        let dir = TempDir::new("log-past-snap");
        let data = dir.path().join("n");
        let (raft, _) = node_log(&data, 30);
        rt().block_on(async {
            let mut s = LogStore::open_with(&raft, Some(lid(1, 20))).unwrap();
            assert!(s.damage().is_empty(), "the snapshot covers the purge");
            s.purge(lid(1, 20)).await.unwrap();
        });
        let older = Some(lid(1, 10));
        rt().block_on(async {
            let mut s = LogStore::open_with(&raft, older).unwrap();
            assert!(
                s.damage()[0].contains("purged up to index 20"),
                "{:?}",
                s.damage()
            );
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, older);
            assert_eq!(st.last_log_id, older);
            assert_eq!(s.read_committed().await.unwrap(), None);
            assert_eq!(
                s.read_vote().await.unwrap(),
                Some(openraft::Vote::new_committed(3, 2))
            );
        });
        // every snapshot lost: an empty log (the leader sends a snapshot)
        rt().block_on(async {
            let mut s = LogStore::open_with(&raft, None).unwrap();
            assert!(
                s.damage()[0].contains("purged up to index 10"),
                "{:?}",
                s.damage()
            );
            let st = s.get_log_state().await.unwrap();
            assert_eq!((st.last_purged_log_id, st.last_log_id), (None, None));
        });
        // once dropped, a restart finds nothing more to drop (but the vote: nothing damaged)
        let d = damage_of(&raft, None);
        assert!(d.is_empty(), "{d:?}");
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Bytes written by openraft 0.9.25 (the same types, `rmp_serde::to_vec`) still decode, and
    /// the log records, vote and log ids re-encode to the very same bytes: the on-disk format did
    /// not change with openraft 0.10.
    #[test]
    fn reads_what_openraft_0_9_wrote() {
        let entries = [
            "929292010101a5426c616e6b",
            "92929201010281aa4d656d6265727368697092919101810194a161a172a167a16b",
            "92929202030381a64e6f726d616c91950107c403010203c404090909092a",
        ];
        for hex in entries {
            let bytes = unhex(hex);
            let e: Entry = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(rmp_serde::to_vec(&e).unwrap(), bytes);
        }
        let e: Entry = rmp_serde::from_slice(&unhex(entries[2])).unwrap();
        assert_eq!(e.log_id, lid_by(2, 3, 3));
        match e.payload {
            EntryPayload::Normal(b) => assert_eq!(b.0[0].command, vec![1, 2, 3]),
            _ => panic!("not a normal entry"),
        }
        let vote = unhex("92920302c3");
        let v: Vote = rmp_serde::from_slice(&vote).unwrap();
        assert_eq!(v, openraft::Vote::new_committed(3, 2));
        assert_eq!(rmp_serde::to_vec(&v).unwrap(), vote);
        let id = unhex("9292020303");
        let l: Option<LogId> = rmp_serde::from_slice(&id).unwrap();
        assert_eq!(l, Some(lid_by(2, 3, 3)));
        assert_eq!(rmp_serde::to_vec(&l).unwrap(), id);
        // 0.9's snapshot meta carried a snapshot_id ("2-3"); 0.10 ignores it on read.
        let meta: crate::types::SnapshotMeta = rmp_serde::from_slice(&unhex(
            "93929202030392929201010292919101810194a161a172a167a16ba3322d33",
        ))
        .unwrap();
        assert_eq!(meta.last_log_id, Some(lid_by(2, 3, 3)));
        assert_eq!(meta.last_membership.log_id(), &Some(lid_by(1, 1, 2)));
    }

    fn lid_by(term: u64, node: u64, index: u64) -> LogId {
        crate::types::log_id(term, node, index)
    }

    fn file_len(dir: &Path) -> u64 {
        fs::metadata(dir.join(LOG_FILE)).unwrap().len()
    }

    /// Offsets where each record ends, to know which entries a cut leaves whole.
    fn record_ends(entries: &[Entry]) -> Vec<u64> {
        let mut end = 0;
        entries
            .iter()
            .map(|e| {
                end += encode_record(e).unwrap().len() as u64;
                end
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// A torn write (the file cut anywhere in its records) loses exactly the records not
        /// wholly written; the file is cut after the last valid record and preallocated again.
        #[test]
        fn torn_tail_is_truncated(n in 1u64..60, cut_frac in 0.0f64..1.0) {
            let dir = TempDir::new("log-torn");
            let written = write(dir.path(), n);
            let ends = record_ends(&written);
            let len = *ends.last().unwrap();
            prop_assert!(file_len(dir.path()) >= len);
            let original = fs::read(dir.path().join(LOG_FILE)).unwrap();
            let cut = ((len as f64) * cut_frac) as u64;
            OpenOptions::new().write(true).open(dir.path().join(LOG_FILE)).unwrap().set_len(cut).unwrap();
            let whole = ends.iter().filter(|e| **e <= cut).count();
            let (read, s) = read_all(dir.path());
            prop_assert_eq!(bytes_of(&read), bytes_of(&written[..whole]));
            let valid = if whole == 0 { 0 } else { ends[whole - 1] };
            prop_assert_eq!(file_len(dir.path()), valid + PREALLOC);
            prop_assert_eq!(s.stats.bytes.load(Ordering::Relaxed), valid);
            // Counted: the torn bytes up to the last non-zero one.
            let torn = original[valid as usize..cut as usize].iter().rposition(|b| *b != 0);
            prop_assert_eq!(
                s.stats.truncated_bytes.load(Ordering::Relaxed),
                torn.map_or(0, |i| i as u64 + 1)
            );
        }

        /// Anything non-zero written after the records, in the preallocated space, is dropped
        /// on open: the space after the records reads as zeros again, so nothing stale can be
        /// read back as a record later.
        #[test]
        fn garbage_after_the_records_is_dropped(n in 1u64..30, at_frac in 0.0f64..1.0, junk in 1u8..=255) {
            let dir = TempDir::new("log-junk");
            let written = write(dir.path(), n);
            let len = *record_ends(&written).last().unwrap();
            let at = len + ((PREALLOC as f64) * at_frac) as u64 % PREALLOC;
            let f = OpenOptions::new().write(true).open(dir.path().join(LOG_FILE)).unwrap();
            f.write_all_at(&[junk], at).unwrap();
            // A whole valid record there is junk too: it is not where the records end.
            f.write_all_at(&encode_record(&written[0]).unwrap(), len + HEADER as u64 * 3).unwrap();
            drop(f);
            let (read, s) = read_all(dir.path());
            prop_assert_eq!(bytes_of(&read), bytes_of(&written));
            prop_assert!(s.stats.truncated_bytes.load(Ordering::Relaxed) > 0);
            prop_assert_eq!(file_len(dir.path()), len + PREALLOC);
            let bytes = fs::read(dir.path().join(LOG_FILE)).unwrap();
            prop_assert!(bytes[len as usize..].iter().all(|b| *b == 0));
        }

        /// A flipped byte anywhere is detected: only the records before the damaged one load,
        /// and none of what loads differs from what was written.
        #[test]
        fn flipped_byte_is_detected(n in 1u64..60, at_frac in 0.0f64..1.0, bit in 0u8..8) {
            let dir = TempDir::new("log-flip");
            let written = write(dir.path(), n);
            let path = dir.path().join(LOG_FILE);
            let ends = record_ends(&written);
            let len = *ends.last().unwrap() as usize;
            let mut bytes = fs::read(&path).unwrap();
            let at = ((len as f64) * at_frac) as usize % len;
            bytes[at] ^= 1 << bit;
            fs::write(&path, &bytes).unwrap();
            let damaged = ends.iter().position(|e| *e as usize > at).unwrap();
            let (read, _) = read_all(dir.path());
            prop_assert_eq!(bytes_of(&read), bytes_of(&written[..damaged]));
            let valid = if damaged == 0 { 0 } else { ends[damaged - 1] };
            prop_assert_eq!(file_len(dir.path()), valid + PREALLOC);
        }
    }
}
