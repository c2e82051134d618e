//! KV events in vLLM's wire format, so routers that subscribe to vLLM's KV events can read a
//! KV_v2 node.
//!
//! vLLM publishes a msgspec-encoded `KVEventBatch`: an array `[ts, events]` (plus the data
//! parallel rank when set), each event a map tagged by `"type"` (`BlockStored`,
//! `BlockRemoved`, `AllBlocksCleared`). Block hashes are sent in vLLM's integer form
//! (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES`): the low 64 bits of the digest, which is the low
//! 64 bits of a KV_v2 key.

use rmp::encode;

use crate::error::{KvError, Result};
use crate::pool::{Event, EventKind, Medium};

fn medium(m: Medium) -> &'static str {
    match m {
        Medium::Device => "GPU",
        Medium::Host => "CPU",
    }
}

fn io<E: std::fmt::Display>(e: E) -> KvError {
    KvError::Io(format!("encoding events: {e}"))
}

fn str_field(buf: &mut Vec<u8>, k: &str, v: Option<&str>) -> Result<()> {
    encode::write_str(buf, k).map_err(io)?;
    match v {
        Some(v) => encode::write_str(buf, v).map_err(io)?,
        None => encode::write_nil(buf).map_err(io)?,
    };
    Ok(())
}

fn hashes(buf: &mut Vec<u8>, keys: &[u128]) -> Result<()> {
    encode::write_array_len(buf, keys.len() as u32).map_err(io)?;
    for &k in keys {
        encode::write_uint(buf, k as u64).map_err(io)?;
    }
    Ok(())
}

/// Encode `events` as one vLLM `KVEventBatch` (timestamp `ts`, seconds since the epoch).
/// `group_idx` is the KV cache group the pool serves (vLLM's single-group engines use 0).
pub fn encode_batch(
    events: &[Event],
    ts: f64,
    data_parallel_rank: Option<i64>,
    group_idx: Option<u32>,
) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(64 + events.len() * 48);
    let b = &mut buf;
    encode::write_array_len(b, if data_parallel_rank.is_some() { 3 } else { 2 }).map_err(io)?;
    encode::write_f64(b, ts).map_err(io)?;
    encode::write_array_len(b, events.len() as u32).map_err(io)?;
    for e in events {
        match &e.kind {
            EventKind::Stored {
                keys,
                parent,
                medium: m,
                tokens,
                block_size,
                ..
            } => {
                encode::write_map_len(b, 8 + u32::from(group_idx.is_some())).map_err(io)?;
                str_field(b, "type", Some("BlockStored"))?;
                encode::write_str(b, "block_hashes").map_err(io)?;
                hashes(b, keys)?;
                encode::write_str(b, "parent_block_hash").map_err(io)?;
                match parent {
                    Some(p) => {
                        encode::write_uint(b, *p as u64).map_err(io)?;
                    }
                    None => encode::write_nil(b).map_err(io)?,
                }
                encode::write_str(b, "token_ids").map_err(io)?;
                encode::write_array_len(b, tokens.len() as u32).map_err(io)?;
                for &t in tokens {
                    encode::write_uint(b, u64::from(t)).map_err(io)?;
                }
                encode::write_str(b, "block_size").map_err(io)?;
                encode::write_uint(b, u64::from(*block_size)).map_err(io)?;
                encode::write_str(b, "lora_id").map_err(io)?;
                encode::write_nil(b).map_err(io)?;
                str_field(b, "medium", Some(medium(*m)))?;
                str_field(b, "lora_name", None)?;
                if let Some(g) = group_idx {
                    encode::write_str(b, "group_idx").map_err(io)?;
                    encode::write_uint(b, u64::from(g)).map_err(io)?;
                }
            }
            EventKind::Removed { keys, medium: m } => {
                encode::write_map_len(b, 3 + u32::from(group_idx.is_some())).map_err(io)?;
                str_field(b, "type", Some("BlockRemoved"))?;
                encode::write_str(b, "block_hashes").map_err(io)?;
                hashes(b, keys)?;
                str_field(b, "medium", Some(medium(*m)))?;
                if let Some(g) = group_idx {
                    encode::write_str(b, "group_idx").map_err(io)?;
                    encode::write_uint(b, u64::from(g)).map_err(io)?;
                }
            }
            EventKind::Cleared => {
                encode::write_map_len(b, 1).map_err(io)?;
                str_field(b, "type", Some("AllBlocksCleared"))?;
            }
        }
    }
    if let Some(r) = data_parallel_rank {
        encode::write_sint(b, r).map_err(io)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_layout_is_array_of_ts_and_tagged_maps() {
        let ev = [
            Event {
                id: 0,
                kind: EventKind::Removed {
                    keys: vec![(7u128 << 64) | 5],
                    medium: Medium::Device,
                },
            },
            Event {
                id: 1,
                kind: EventKind::Cleared,
            },
        ];
        let b = encode_batch(&ev, 1.5, None, None).unwrap();
        assert_eq!(b[0], 0x92, "[ts, events]");
        assert_eq!(b[1], 0xcb, "ts is a float64");
        assert_eq!(b[10], 0x92, "two events");
        assert_eq!(b[11], 0x83, "BlockRemoved: type, block_hashes, medium");
        let removed = b"\xa4type\xacBlockRemoved\xacblock_hashes\x91\x05";
        assert_eq!(
            &b[12..12 + removed.len()],
            removed,
            "low 64 bits of the key"
        );
        assert!(b.ends_with(b"\x81\xa4type\xb0AllBlocksCleared"));
        let with_rank = encode_batch(&ev, 1.5, Some(3), Some(0)).unwrap();
        assert_eq!(with_rank[0], 0x93);
        assert_eq!(*with_rank.last().unwrap(), 3);
    }
}
