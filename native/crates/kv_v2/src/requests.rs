//! Request-level block tables kept next to the pool, as vLLM's `KVCacheManager` keeps
//! `req_to_blocks`: a scheduler names a request once and every later call is O(1) crossings,
//! with no block-id lists going back and forth.

use std::collections::HashMap;

use crate::error::{KvError, Result};
use crate::hash::Key;
use crate::pool::{BlockId, DupPolicy, Pool};
use crate::prefetch::prefetch;
use crate::reqmap::ReqMap;
pub use crate::reqmap::RequestTable;

/// At most this many freed tables are kept for reuse.
const MAX_SPARE_TABLES: usize = 256;

/// Block tables by request id.
#[derive(Debug, Default)]
pub struct Requests {
    reqs: ReqMap,
    /// Token ids of the keyed blocks past each request's `cached` blocks, kept only while
    /// the pool records events (they go into the stored event when the blocks are cached).
    pending_tokens: HashMap<u64, Vec<u32>>,
    scratch: Vec<BlockId>,
    /// Freed tables, emptied, whose buffers the next admissions and forks reuse. In a process
    /// that also runs Python, `malloc` and `realloc` of a table's buffers walk a heap shared
    /// with the interpreter's objects: measured from Python on a 100k-block pool, they were
    /// half of a scheduler step's time and a quarter of a release's.
    spare: Vec<RequestTable>,
    /// Block slots (the larger of the two buffers' capacities) held by `spare`: at most the
    /// pool's block count, so the spares never hold more than the live tables could.
    spare_slots: usize,
}

impl Requests {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.reqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.len() == 0
    }

    pub fn get(&self, rid: u64) -> Result<&RequestTable> {
        self.reqs.get(rid).ok_or(KvError::UnknownRequest(rid))
    }

    /// Freed tables kept for reuse, and the block slots they hold (see [`Requests::recycle`]).
    pub fn spare(&self) -> (usize, usize) {
        (self.spare.len(), self.spare_slots)
    }

    /// An empty table, with the buffers of a freed one when there is one.
    fn fresh_table(&mut self) -> RequestTable {
        match self.spare.pop() {
            Some(t) => {
                self.spare_slots -= slots(&t);
                t
            }
            None => RequestTable::default(),
        }
    }

    /// Keep a freed table's buffers for a later request, within the spare budget.
    fn recycle(&mut self, mut t: RequestTable, num_blocks: usize) {
        let n = slots(&t);
        if n == 0 || self.spare.len() >= MAX_SPARE_TABLES || self.spare_slots + n > num_blocks {
            return;
        }
        t.blocks.clear();
        t.keys.clear();
        t.cached = 0;
        self.spare_slots += n;
        self.spare.push(t);
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
        if self.reqs.contains(rid) {
            return Err(KvError::RequestExists(rid));
        }
        let mut t = self.fresh_table();
        t.blocks.reserve(total);
        let probe = &keys[..max_hit.min(keys.len())];
        let Some(hits) = pool.admit(probe, total, false, &mut t.blocks, evicted)? else {
            self.recycle(t, pool.config().num_blocks);
            return Ok(None);
        };
        let bs = pool.config().block_size;
        if pool.events_enabled() && tokens.len() == keys.len() * bs {
            self.pending_tokens
                .insert(rid, tokens[hits * bs..].to_vec());
        }
        t.keys.extend_from_slice(keys);
        t.cached = hits;
        self.reqs.insert(rid, t);
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
        let r = self.reqs.get_mut(rid).ok_or(KvError::UnknownRequest(rid))?;
        r.keys.extend_from_slice(new_keys);
        let need = total.saturating_sub(r.blocks.len());
        if need == 0 {
            return Ok(true);
        }
        match pool.allocate(need, true, &mut r.blocks, evicted) {
            Ok(()) => Ok(true),
            Err(KvError::OutOfBlocks { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Cache the request's computed full blocks (those with keys, up to `computed` blocks).
    /// Returns how many were registered.
    pub fn commit(&mut self, pool: &mut Pool, rid: u64, computed: usize) -> Result<usize> {
        let r = self.reqs.get_mut(rid).ok_or(KvError::UnknownRequest(rid))?;
        let pending = self.pending_tokens.get_mut(&rid);
        commit_table(pool, r, computed, &mut self.scratch, pending)
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
        let r = self.reqs.get_mut(rid).ok_or(KvError::UnknownRequest(rid))?;
        prefetch_table(r);
        let need = total.saturating_sub(r.blocks.len());
        let grown = need == 0
            || match pool.allocate(need, true, &mut r.blocks, evicted) {
                Ok(()) => true,
                Err(KvError::OutOfBlocks { .. }) => false,
                Err(e) => return Err(e),
            };
        // The keys are kept even when the blocks do not fit.
        extend_keys(&mut r.keys, new_keys);
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
        if let (Some(ids), Some(keys)) = (r.blocks.get(r.cached..), r.keys.get(r.cached..)) {
            pool.prefetch_register(ids, keys);
        }
        commit_table(pool, r, usize::MAX, &mut self.scratch, pending).map(Some)
    }

    /// Blocks in the request's table.
    pub fn num_blocks(&self, rid: u64) -> Result<usize> {
        Ok(self.get(rid)?.blocks.len())
    }

    /// Free the request's blocks (tail first, as vLLM does) and forget it.
    pub fn free(&mut self, pool: &mut Pool, rid: u64) -> Result<usize> {
        let r = self.reqs.remove(rid).ok_or(KvError::UnknownRequest(rid))?;
        if let Err(e) = pool.free_request(&r.blocks) {
            self.reqs.insert(rid, r);
            return Err(e);
        }
        self.pending_tokens.remove(&rid);
        let n = r.blocks.len();
        self.recycle(r, pool.config().num_blocks);
        Ok(n)
    }

    /// A child request sharing every block of `parent` (copy-on-write branches).
    pub fn fork(&mut self, pool: &mut Pool, parent: u64, child: u64) -> Result<()> {
        if self.reqs.contains(child) {
            return Err(KvError::RequestExists(child));
        }
        let p = self.get(parent)?;
        pool.touch(&p.blocks)?;
        let mut t = self.fresh_table();
        let p = self.get(parent)?;
        t.blocks.extend_from_slice(&p.blocks);
        t.keys.extend_from_slice(&p.keys);
        t.cached = p.cached;
        if let Some(tokens) = self.pending_tokens.get(&parent) {
            self.pending_tokens.insert(child, tokens.clone());
        }
        self.reqs.insert(child, t);
        Ok(())
    }
}

/// Prefetch the lines of `r`'s buffers a step touches: the first block to register and its
/// key, and the end of the key list, where the new keys go.
fn prefetch_table(r: &RequestTable) {
    if let Some(b) = r.blocks.get(r.cached) {
        prefetch(b);
    }
    if let Some(k) = r.keys.get(r.cached) {
        prefetch(k);
    }
    if let Some(k) = r.keys.last() {
        prefetch(k);
    }
}

/// Append a step's few new keys. A loop, not `extend_from_slice`: for a handful of keys the
/// `memcpy` call cost more than the copy (measured from Python: 16% of a step's time).
fn extend_keys(keys: &mut Vec<Key>, new: &[Key]) {
    keys.reserve(new.len());
    for &k in new {
        keys.push(k);
    }
}

/// Block slots a table's buffers hold (see [`Requests::recycle`]).
fn slots(t: &RequestTable) -> usize {
    t.blocks.capacity().max(t.keys.capacity())
}

/// Register `r`'s blocks from `r.cached` up to `computed` (bounded by keys and blocks).
fn commit_table(
    pool: &mut Pool,
    r: &mut RequestTable,
    computed: usize,
    scratch: &mut Vec<BlockId>,
    pending: Option<&mut Vec<u32>>,
) -> Result<usize> {
    let end = computed.min(r.keys.len()).min(r.blocks.len());
    let start = r.cached;
    if end <= start {
        return Ok(0);
    }
    let parent = start.checked_sub(1).map(|p| r.keys[p]);
    let bs = pool.config().block_size;
    let ntok = (end - start) * bs;
    let tokens = pending
        .as_deref()
        .and_then(|p| p.get(..ntok))
        .unwrap_or(&[]);
    if pool.config().dup == DupPolicy::KeepAll {
        // Every block keeps its id: the table needs no rewrite.
        pool.register_tokens(
            &r.blocks[start..end],
            &r.keys[start..end],
            parent,
            None,
            tokens,
        )?;
    } else {
        scratch.clear();
        pool.register_tokens(
            &r.blocks[start..end],
            &r.keys[start..end],
            parent,
            Some(scratch),
            tokens,
        )?;
        r.blocks[start..end].copy_from_slice(scratch);
    }
    r.cached = end;
    if let Some(p) = pending {
        let drained = ntok.min(p.len());
        p.drain(..drained);
    }
    Ok(end - start)
}
