//! The node's KV_v2 engine (crate `kv_v2`): a paged KV-cache block pool sized from
//! `memory.kv` (blocks, blockSize, eviction, ttlSeconds), reported in status and metrics.

use std::sync::Mutex;

use kv_v2::{Config, Policy, Pool};

/// `memory.kv` of node.json: what the compiler sized for this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvConfig {
    pub block_size: u64,
    pub blocks: u64,
    pub eviction: String,
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvStats {
    pub available: bool,
    pub block_size: u64,
    pub blocks_total: u64,
    pub blocks_used: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

pub struct KvEngine {
    pool: Mutex<Pool>,
}

/// The eviction policy named by `memory.kv.eviction` (the compiler's vocabulary).
pub fn policy(cfg: &KvConfig) -> Result<Policy, String> {
    Ok(match cfg.eviction.as_str() {
        "lru" => Policy::Lru,
        "lfu" => Policy::Lfu,
        "priority" => Policy::Priority,
        "ttl" => {
            let ttl = cfg
                .ttl_seconds
                .filter(|t| *t > 0)
                .ok_or("eviction \"ttl\" needs ttlSeconds > 0")?;
            Policy::Ttl {
                ttl: u32::try_from(ttl).map_err(|_| "ttlSeconds is too large")?,
            }
        }
        other => {
            return Err(format!(
                "unknown eviction {other:?} (expected lru, lfu, priority or ttl)"
            ))
        }
    })
}

impl KvEngine {
    pub fn new(cfg: &KvConfig) -> Result<Self, String> {
        let mut c = Config::new(cfg.blocks as usize, cfg.block_size as usize);
        c.policy = policy(cfg)?;
        let pool = Pool::new(c).map_err(|e| e.to_string())?;
        Ok(KvEngine {
            pool: Mutex::new(pool),
        })
    }

    /// Runs `f` on the pool (the seam for the node's KV API).
    pub fn with_pool<T>(&self, f: impl FnOnce(&mut Pool) -> T) -> T {
        f(&mut self.pool.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn stats(&self) -> KvStats {
        self.with_pool(|p| {
            let s = p.stats();
            KvStats {
                available: true,
                block_size: p.config().block_size as u64,
                blocks_total: s.num_blocks as u64,
                blocks_used: s.used as u64,
                hits: s.hit_blocks,
                misses: s.query_blocks.saturating_sub(s.hit_blocks),
                evictions: s.evictions,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(eviction: &str, ttl: Option<u64>) -> KvConfig {
        KvConfig {
            block_size: 16,
            blocks: 64,
            eviction: eviction.into(),
            ttl_seconds: ttl,
        }
    }

    #[test]
    fn sized_from_config() {
        let kv = KvEngine::new(&cfg("lru", None)).unwrap();
        let s = kv.stats();
        assert!(s.available);
        assert_eq!((s.block_size, s.blocks_total, s.blocks_used), (16, 64, 0));
        let (mut ids, mut evicted) = (Vec::new(), Vec::new());
        kv.with_pool(|p| p.allocate(3, false, &mut ids, &mut evicted))
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(kv.stats().blocks_used, 3);
        assert!(KvEngine::new(&cfg("ttl", None)).is_err());
        assert!(KvEngine::new(&cfg("ttl", Some(60))).is_ok());
        assert!(KvEngine::new(&cfg("fifo", None)).is_err());
    }
}
