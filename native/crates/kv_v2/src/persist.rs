//! The prefix index on disk, so a restarted node keeps serving hits from blocks it still holds.
//!
//! Layout: `b"KVV2IDX\0"`, format version (u32 LE), payload length (u64 LE), blake3 of the
//! payload (32 bytes), then the payload: a msgpack [`Snapshot`]. Anything truncated, corrupt or
//! for another pool shape is refused with [`KvError::Corrupt`]; nothing is half-loaded.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{KvError, Result};
use crate::pool::{IndexEntry, Pool};

const MAGIC: &[u8; 8] = b"KVV2IDX\0";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 32;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    num_blocks: u64,
    block_size: u64,
    hash_tag: u8,
    /// `(block, key_hi, key_lo, flags, prio, freq)`, flags bit 0 partial, bit 1 pinned.
    entries: Vec<(u32, u64, u64, u8, u8, u32)>,
}

/// Serialize the pool's index to bytes.
pub fn to_bytes(pool: &Pool) -> Result<Vec<u8>> {
    let cfg = pool.config();
    let snap = Snapshot {
        num_blocks: cfg.num_blocks as u64,
        block_size: cfg.block_size as u64,
        hash_tag: cfg.hash_tag,
        entries: pool
            .export_index()
            .into_iter()
            .map(|e| {
                let flags = u8::from(e.partial) | (u8::from(e.pinned) << 1);
                (
                    e.block,
                    (e.key >> 64) as u64,
                    e.key as u64,
                    flags,
                    e.prio,
                    e.freq,
                )
            })
            .collect(),
    };
    let payload = rmp_serde::to_vec(&snap).map_err(|e| KvError::Io(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(blake3::hash(&payload).as_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Parse and verify bytes written by [`to_bytes`] for a pool of `pool`'s shape.
pub fn parse(pool: &Pool, bytes: &[u8]) -> Result<Vec<IndexEntry>> {
    let bad = |m: &str| KvError::Corrupt(m.to_string());
    if bytes.len() < HEADER {
        return Err(bad("truncated header"));
    }
    if &bytes[..8] != MAGIC {
        return Err(bad("not a KV_v2 index file (bad magic)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().map_err(|_| bad("header"))?);
    if version != VERSION {
        return Err(KvError::Corrupt(format!(
            "unsupported format version {version}"
        )));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().map_err(|_| bad("header"))?);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(KvError::Corrupt(format!(
            "truncated or padded payload: header says {len} bytes, file has {}",
            payload.len()
        )));
    }
    if blake3::hash(payload).as_bytes() != &bytes[20..52] {
        return Err(bad("checksum mismatch"));
    }
    let snap: Snapshot =
        rmp_serde::from_slice(payload).map_err(|e| KvError::Corrupt(format!("payload: {e}")))?;
    let cfg = pool.config();
    if snap.num_blocks != cfg.num_blocks as u64
        || snap.block_size != cfg.block_size as u64
        || snap.hash_tag != cfg.hash_tag
    {
        return Err(KvError::Corrupt(format!(
            "index is for {} blocks of {} tokens, hash mode {}; this pool has {} of {}, mode {}",
            snap.num_blocks,
            snap.block_size,
            snap.hash_tag,
            cfg.num_blocks,
            cfg.block_size,
            cfg.hash_tag
        )));
    }
    Ok(snap
        .entries
        .into_iter()
        .map(|(block, hi, lo, flags, prio, freq)| IndexEntry {
            block,
            key: (u128::from(hi) << 64) | u128::from(lo),
            partial: flags & 1 != 0,
            pinned: flags & 2 != 0,
            prio,
            freq,
        })
        .collect())
}

/// Restore an index from bytes into a pool with no hashes and no references.
pub fn from_bytes(pool: &mut Pool, bytes: &[u8]) -> Result<usize> {
    let entries = parse(pool, bytes)?;
    pool.import_index(&entries)?;
    Ok(entries.len())
}

/// Write the index atomically (temporary file, fsync, rename).
pub fn save(pool: &Pool, path: &Path) -> Result<()> {
    let bytes = to_bytes(pool)?;
    let io = |e: std::io::Error| KvError::Io(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Read and restore an index written by [`save`]; returns the number of cached blocks.
pub fn load(pool: &mut Pool, path: &Path) -> Result<usize> {
    let bytes = std::fs::read(path).map_err(|e| KvError::Io(format!("{}: {e}", path.display())))?;
    from_bytes(pool, &bytes)
}
