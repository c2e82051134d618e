//! The typed errors every fallible KV_v2 operation returns. Nothing in this crate panics on bad
//! input from a caller or a file: the bindings turn each variant into a Python exception.

use thiserror::Error;

/// Everything that can go wrong in a KV_v2 call.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The pool was asked for a shape it cannot have (no blocks, zero block size, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Not enough allocatable blocks, even after evicting every evictable cached block.
    #[error(
        "out of blocks: wanted {wanted}, only {available} can be allocated (reserve {reserve})"
    )]
    OutOfBlocks {
        wanted: usize,
        available: usize,
        reserve: usize,
    },
    /// A block id outside the pool, or the reserved null block where a real block is needed.
    #[error("invalid block id {0}")]
    InvalidBlock(u32),
    /// Releasing a block whose reference count is already zero.
    #[error("block {0} is not in use (double free)")]
    NotInUse(u32),
    /// Registering a block under a second, different full hash.
    #[error("block {0} already holds a different full hash")]
    AlreadyHashed(u32),
    /// Argument lists whose lengths must agree did not.
    #[error("length mismatch: {0}")]
    Length(String),
    /// No request with this id.
    #[error("unknown request {0}")]
    UnknownRequest(u64),
    /// A request with this id already exists.
    #[error("request {0} already exists")]
    RequestExists(u64),
    /// The operation needs every block free (reset, restore).
    #[error("{0} blocks are still in use")]
    Busy(usize),
    /// A persisted index that is truncated, corrupt or for another pool shape.
    #[error("corrupt or incompatible index file: {0}")]
    Corrupt(String),
    /// File system failure while saving or loading the index.
    #[error("i/o error: {0}")]
    Io(String),
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, KvError>;
