//! Request-level block tables kept next to the pool, as vLLM's `KVCacheManager` keeps
//! `req_to_blocks`: a scheduler names a request once and every later call is O(1) crossings,
//! with no block-id lists going back and forth.
//!
//! Tables live in two arenas (block ids, keys; see [`crate::arena`]) and are found through a
//! one-line-per-entry map ([`crate::reqmap`]). Both come from profiling the request API
//! called from Python on a 100k-block pool: with a `Vec` per table, `malloc`/`realloc` of
//! the buffers (on a heap shared with the interpreter) were half of a scheduler step's time
//! and a quarter of a release's, and the buffers' 4 KiB pages cost a page walk per step.

use std::collections::HashMap;

use crate::arena::Arena;
use crate::error::{KvError, Result};
use crate::hash::Key;
use crate::hints::prefetch;
use crate::pool::{BlockId, DupPolicy, Pool};
use crate::reqmap::{Entry, ReqMap};

/// Blocks of room an admitted table gets past its prompt (512 tokens of output at 16 a block)
/// before its buffers move to a larger span.
const GROWTH_ROOM: usize = 32;

/// One request's blocks and the keys of its full blocks so far, borrowed from [`Requests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTable<'a> {
    pub blocks: &'a [BlockId],
    pub keys: &'a [Key],
    /// Leading blocks already in the prefix index (hits, or registered by [`Requests::commit`]).
    pub cached: usize,
}

/// Block tables by request id.
#[derive(Default)]
pub struct Requests {
    map: ReqMap,
    blocks: Arena<BlockId>,
    keys: Arena<Key>,
    /// Token ids of the keyed blocks past each request's `cached` blocks, kept only while
    /// the pool records events (they go into the stored event when the blocks are cached).
    pending_tokens: HashMap<u64, Vec<u32>>,
    scratch: Vec<BlockId>,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests")
            .field("requests", &self.map.len())
            .field("reserved", &self.reserved())
            .finish()
    }
}

/// Pools from this many blocks get their request tables on huge pages (see
/// [`Requests::for_pool`]).
pub const HUGE_TABLES_FROM: usize = 16_384;

impl Requests {
    /// Tables on ordinary pages, their memory taken as requests need it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tables for a pool of `num_blocks`. From [`HUGE_TABLES_FROM`] blocks they live on
    /// transparent huge pages, the first one of each arena (4 MiB in all) taken now: on a
    /// pool that size, called from Python, a table on 4 KiB pages cost a page walk per step.
    pub fn for_pool(num_blocks: usize) -> Self {
        if num_blocks < HUGE_TABLES_FROM {
            return Self::new();
        }
        Requests {
            blocks: Arena::on_huge_pages(),
            keys: Arena::on_huge_pages(),
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    pub fn get(&self, rid: u64) -> Result<RequestTable<'_>> {
        let e = self.map.get(rid).ok_or(KvError::UnknownRequest(rid))?;
        Ok(RequestTable {
            blocks: self.blocks.slice(e.blocks),
            keys: self.keys.slice(e.keys),
            cached: e.cached,
        })
    }

    /// Elements (block ids, keys) the tables' arenas hold, in use or free for reuse.
    pub fn reserved(&self) -> (usize, usize) {
        (self.blocks.reserved(), self.keys.reserved())
    }

    /// Admit request `rid` whose full blocks have `keys`: take its cached prefix (at most
    /// `max_hit` blocks) and allocate up to `total` blocks. `None` (nothing changed) when it
    /// does not fit.
    pub fn admit(
        &mut self,
        pool: &mut Pool,
        rid: u64,
        keys: &[Key],
        total: usize,
        max_hit: usize,
        evicted: &mut Vec<Key>,
    ) -> Result<Option<usize>> {
        self.admit_tokens(pool, rid, keys, &[], total, max_hit, evicted)
    }

    /// [`Requests::admit`] with the token ids of the keyed blocks, for the stored events.
    #[allow(clippy::too_many_arguments)]
    pub fn admit_tokens(
        &mut self,
        pool: &mut Pool,
        rid: u64,
        keys: &[Key],
        tokens: &[u32],
        total: usize,
        max_hit: usize,
        evicted: &mut Vec<Key>,
    ) -> Result<Option<usize>> {
        if self.map.contains(rid) {
            return Err(KvError::RequestExists(rid));
        }
        self.scratch.clear();
        let probe = &keys[..max_hit.min(keys.len())];
        let Some(hits) = pool.admit(probe, total, false, &mut self.scratch, evicted)? else {
            return Ok(None);
        };
        // Room for the decode steps to come, so a table seldom moves (copying all of it).
        let room = keys.len().max(total) + GROWTH_ROOM;
        let mut b = self.blocks.alloc(room);
        self.blocks.extend(&mut b, &self.scratch);
        let mut k = self.keys.alloc(room);
        self.keys.extend(&mut k, keys);
        let bs = pool.config().block_size;
        if pool.events_enabled() && tokens.len() == keys.len() * bs {
            self.pending_tokens
                .insert(rid, tokens[hits * bs..].to_vec());
        }
        self.map.insert(rid, Entry::new(b, k, hits));
        Ok(Some(hits))
    }

    /// Append the keys of newly full blocks and grow the table to `total` blocks (all or
    /// nothing). Running requests may use the pool's reserve, which admission cannot: that
    /// headroom is what lets admitted requests keep decoding. Returns whether the blocks were
    /// allocated (the keys are kept either way).
    pub fn grow(
        &mut self,
        pool: &mut Pool,
        rid: u64,
        new_keys: &[Key],
        total: usize,
        evicted: &mut Vec<Key>,
    ) -> Result<bool> {
        let e = self.map.get_mut(rid).ok_or(KvError::UnknownRequest(rid))?;
        self.keys.extend(&mut e.keys, new_keys);
        grow_blocks(pool, &mut self.blocks, e, total, &mut self.scratch, evicted)
    }

    /// Cache the request's computed full blocks (those with keys, up to `computed` blocks).
    /// Returns how many were registered.
    pub fn commit(&mut self, pool: &mut Pool, rid: u64, computed: usize) -> Result<usize> {
        let e = self.map.get_mut(rid).ok_or(KvError::UnknownRequest(rid))?;
        let pending = if self.pending_tokens.is_empty() {
            None
        } else {
            self.pending_tokens.get_mut(&rid)
        };
        let t = Tables {
            blocks: &mut self.blocks,
            keys: &self.keys,
        };
        commit_table(pool, e, t, computed, &mut self.scratch, pending)
    }

    /// One scheduler step for a running request: append the keys of newly full blocks,
    /// grow the table to `total` blocks (the reserve may be used, as in [`Requests::grow`]),
    /// then cache every full block with a key. `None` when
    /// the blocks do not fit (keys kept, nothing cached); otherwise the number registered.
    pub fn step(
        &mut self,
        pool: &mut Pool,
        rid: u64,
        new_keys: &[Key],
        total: usize,
        evicted: &mut Vec<Key>,
    ) -> Result<Option<usize>> {
        self.step_tokens(pool, rid, new_keys, &[], total, evicted)
    }

    /// [`Requests::step`] with the token ids of the newly keyed blocks, for stored events.
    pub fn step_tokens(
        &mut self,
        pool: &mut Pool,
        rid: u64,
        new_keys: &[Key],
        new_tokens: &[u32],
        total: usize,
        evicted: &mut Vec<Key>,
    ) -> Result<Option<usize>> {
        // Start every miss the step will take before waiting on any. First the next victim's
        // index line and the new keys' index lines; then, once the table is found, the lines
        // of its buffers the step reads and writes (asked for, not read, so nothing waits on
        // them during the allocation).
        pool.prefetch_allocation();
        pool.prefetch_keys(&new_keys[..new_keys.len().min(16)]);
        let e = self.map.get_mut(rid).ok_or(KvError::UnknownRequest(rid))?;
        prefetch_table(&self.blocks, &self.keys, e);
        // The blocks already in the table that this step registers (a decode step's block
        // that just filled): their lines and index lines load during the allocation.
        let (ids, keys) = (self.blocks.slice(e.blocks), self.keys.slice(e.keys));
        if let (Some(ids), Some(keys)) = (ids.get(e.cached..), keys.get(e.cached..)) {
            pool.prefetch_register(ids, keys);
        }
        let grown = grow_blocks(pool, &mut self.blocks, e, total, &mut self.scratch, evicted)?;
        // The keys are kept even when the blocks do not fit.
        self.keys.extend(&mut e.keys, new_keys);
        let pending = if pool.events_enabled() {
            let p = self.pending_tokens.entry(rid).or_default();
            p.extend_from_slice(new_tokens);
            Some(p)
        } else {
            None
        };
        if !grown {
            return Ok(None);
        }
        let t = Tables {
            blocks: &mut self.blocks,
            keys: &self.keys,
        };
        commit_table(pool, e, t, usize::MAX, &mut self.scratch, pending).map(Some)
    }

    /// Blocks in the request's table.
    pub fn num_blocks(&self, rid: u64) -> Result<usize> {
        Ok(self.get(rid)?.blocks.len())
    }

    /// Free the request's blocks (tail first, as vLLM does) and forget it.
    pub fn free(&mut self, pool: &mut Pool, rid: u64) -> Result<usize> {
        let e = self.map.remove(rid).ok_or(KvError::UnknownRequest(rid))?;
        if let Err(err) = pool.free_request(self.blocks.slice(e.blocks)) {
            self.map.insert(rid, e);
            return Err(err);
        }
        if !self.pending_tokens.is_empty() {
            self.pending_tokens.remove(&rid);
        }
        self.blocks.release(e.blocks);
        self.keys.release(e.keys);
        Ok(e.blocks.len())
    }

    /// A child request sharing every block of `parent` (copy-on-write branches).
    pub fn fork(&mut self, pool: &mut Pool, parent: u64, child: u64) -> Result<()> {
        if self.map.contains(child) {
            return Err(KvError::RequestExists(child));
        }
        let p = *self
            .map
            .get(parent)
            .ok_or(KvError::UnknownRequest(parent))?;
        pool.touch(self.blocks.slice(p.blocks))?;
        let b = self.blocks.duplicate(p.blocks);
        let k = self.keys.duplicate(p.keys);
        if let Some(tokens) = self.pending_tokens.get(&parent) {
            self.pending_tokens.insert(child, tokens.clone());
        }
        self.map.insert(child, Entry::new(b, k, p.cached));
        Ok(())
    }
}

/// The arenas a commit reads and writes.
struct Tables<'a> {
    blocks: &'a mut Arena<BlockId>,
    keys: &'a Arena<Key>,
}

/// Grow `e`'s blocks to `total` (the reserve may be used). False when they do not fit.
fn grow_blocks(
    pool: &mut Pool,
    blocks: &mut Arena<BlockId>,
    e: &mut Entry,
    total: usize,
    scratch: &mut Vec<BlockId>,
    evicted: &mut Vec<Key>,
) -> Result<bool> {
    let need = total.saturating_sub(e.blocks.len());
    if need == 0 {
        return Ok(true);
    }
    scratch.clear();
    match pool.allocate(need, true, scratch, evicted) {
        Ok(()) => {
            blocks.extend(&mut e.blocks, scratch);
            Ok(true)
        }
        Err(KvError::OutOfBlocks { .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Prefetch the lines of `e`'s buffers a step touches: the first block to register and its
/// key, and the end of the key list, where the new keys go.
fn prefetch_table(blocks: &Arena<BlockId>, keys: &Arena<Key>, e: &Entry) {
    if let Some(b) = blocks.slice(e.blocks).get(e.cached) {
        prefetch(b);
    }
    let k = keys.slice(e.keys);
    if let Some(k) = k.get(e.cached) {
        prefetch(k);
    }
    if let Some(k) = k.last() {
        prefetch(k);
    }
}

/// Register `e`'s blocks from `e.cached` up to `computed` (bounded by keys and blocks).
fn commit_table(
    pool: &mut Pool,
    e: &mut Entry,
    t: Tables<'_>,
    computed: usize,
    scratch: &mut Vec<BlockId>,
    pending: Option<&mut Vec<u32>>,
) -> Result<usize> {
    let end = computed.min(e.keys.len()).min(e.blocks.len());
    let start = e.cached;
    if end <= start {
        return Ok(0);
    }
    let keys = &t.keys.slice(e.keys)[start..end];
    let parent = start.checked_sub(1).map(|p| t.keys.slice(e.keys)[p]);
    let bs = pool.config().block_size;
    let ntok = (end - start) * bs;
    let tokens = pending
        .as_deref()
        .and_then(|p| p.get(..ntok))
        .unwrap_or(&[]);
    let ids = &t.blocks.slice(e.blocks)[start..end];
    if pool.config().dup == DupPolicy::KeepAll {
        // Every block keeps its id: the table needs no rewrite.
        pool.register_tokens(ids, keys, parent, None, tokens)?;
    } else {
        scratch.clear();
        pool.register_tokens(ids, keys, parent, Some(scratch), tokens)?;
        t.blocks.slice_mut(e.blocks)[start..end].copy_from_slice(scratch);
    }
    e.cached = end;
    if let Some(p) = pending {
        let drained = ntok.min(p.len());
        p.drain(..drained);
    }
    Ok(end - start)
}
