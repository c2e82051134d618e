//! KV_v2: a paged KV-cache block manager.
pub const NULL_BLOCK: u32 = 0;
