//! KV_v2: a paged KV-cache block manager.
//!
//! A node shares, reuses and evicts paged KV-cache blocks across an agent's many sessions:
//! long shared system prompts, multi-turn transcripts, branches of one conversation. This crate
//! is the engine, with no Python in it:
//!
//! * [`hash`]: chained block hashes (xxh3, blake3, or vLLM's `sha256_cbor` byte for byte).
//! * [`pool`]: the ref-counted pool, prefix index, eviction policies, events, host tier.
//! * [`requests`]: per-request block tables beside the pool (vLLM's `req_to_blocks`).
//! * [`vllm_events`]: events in vLLM's `KVEventBatch` wire format (msgpack).
//! * [`persist`]: the prefix index on disk (msgpack, blake3-checksummed).
//!
//! Under [`pool::Policy::Lru`] with [`pool::DupPolicy::KeepAll`] the pool reproduces vLLM v1's
//! `BlockPool` decisions exactly: the same hits and the same eviction order.

mod arena;
pub mod error;
pub mod hash;
mod hints;
pub mod persist;
pub mod pool;
mod reqmap;
pub mod requests;
pub mod vllm_events;

pub use error::{KvError, Result};
pub use hash::{BlockHasher, Digest, Extra, HashMode, Key, MmFeature};
pub use pool::{
    BlockId, Config, DupPolicy, Event, EventKind, IndexEntry, Medium, Offload, Policy, Pool, Stats,
    NULL_BLOCK,
};
pub use requests::{RequestTable, Requests};
