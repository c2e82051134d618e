//! The block pool: ref-counted blocks, the free structure, the prefix index and eviction.
//!
//! Every block except the null block 0 is in exactly one state:
//!
//! * **free**: reference count 0 and in the free structure, so allocation can take it. A free
//!   block may still hold a hash ("evictable"): a hit on it revives it without recomputation.
//! * **used**: reference count > 0, owned by one or more requests.
//! * **pinned-idle**: reference count 0 but pinned (a system prompt, say): cached, never taken.
//!
//! Under [`Policy::Lru`] the free structure is vLLM's: one doubly linked list through the block
//! array, un-hashed blocks put at the head (reused first), hashed ones at the tail (evicted in
//! least-recently-freed order), popped from the head. The other policies keep un-hashed blocks
//! in that list and order the evictable hashed blocks in a B-tree by their policy key.

use std::collections::BTreeSet;

use crate::error::{KvError, Result};
use crate::hash::Key;
use crate::hints::prefetch;

mod check;
mod index;
mod links;
mod tier;

/// Index of a block in the pool.
pub type BlockId = u32;
/// The reserved placeholder block (vLLM's `null_block`); never allocated, freed or hashed.
pub const NULL_BLOCK: BlockId = 0;
const NIL: u32 = u32::MAX;
/// The logical clock is renumbered when it reaches this, far enough below `u32::MAX` that no
/// single call can run past the end.
const TICK_REBASE: u32 = u32::MAX - (1 << 30);
/// Largest pool: block ids must stay clear of the `u32::MAX` link sentinel.
pub const MAX_BLOCKS: usize = 1 << 31;

/// How many blocks ahead the batched loops prefetch (see [`crate::hints`]).
const PREFETCH_AHEAD: usize = 8;
/// How many blocks ahead a release prefetches. Its loop does little per block, so the misses
/// on the blocks' lines are its whole cost and it gains from more in flight: on a 100k-block
/// pool, from Python, 8 ahead gave 184-187M blocks/s, 16 200-202M, 32 223-241M, 64 and 128
/// no more. The other loops do more per block and gained nothing from 16.
const FREE_AHEAD: usize = 32;

const F_HASHED: u8 = 1;
const F_PARTIAL: u8 = 2;
const F_PINNED: u8 = 4;
const F_FREE: u8 = 8;
const F_IN_TREE: u8 = 16;
/// The block's key is held by at least one other block too: its duplicate chain (in [`Cold`])
/// is meaningful. Without it a hashed block is alone under its key (`dup_next` NIL,
/// `dup_prev` itself) and the index need not read its cold links.
const F_DUP: u8 = 32;
/// [`Block::freq`] value meaning "the count is at least this, and is in [`Cold::freq`]".
const FREQ_SPILLED: u16 = u16::MAX;

/// Hot per-block metadata: what allocation, release, touch and the free list need under
/// [`Policy::Lru`]. 16 bytes, four blocks per cache line. The rest is in [`Cold`], and the
/// block's key in a third parallel array, read by the index only.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Block {
    prev: u32,
    next: u32,
    ref_cnt: u32,
    /// Hits plus allocations (LFU), exact below [`FREQ_SPILLED`]; at that value the count is in
    /// [`Cold::freq`] (see [`Pool::freq`]).
    freq: u16,
    prio: u8,
    flags: u8,
}

impl Block {
    const EMPTY: Block = Block {
        prev: NIL,
        next: NIL,
        ref_cnt: 0,
        freq: 0,
        prio: 0,
        flags: 0,
    };
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

const _: () = assert!(std::mem::size_of::<Block>() == 16);
const _: () = assert!(std::mem::size_of::<Cold>() == 16);

/// Cold per-block metadata, parallel to the hot array: read only by the policies that need it
/// and by duplicate chains.
#[derive(Clone, Copy, Debug)]
struct Cold {
    /// Next block holding the same key (duplicates are kept under [`DupPolicy::KeepAll`]);
    /// meaningful only under [`F_DUP`].
    dup_next: u32,
    /// Previous block holding the same key; for the chain's head, its last block (so
    /// appending and unlinking a duplicate are O(1)); meaningful only under [`F_DUP`].
    dup_prev: u32,
    /// The frequency count once it no longer fits [`Block::freq`] (saturating).
    freq: u32,
    /// When the block was last released or touched: a logical tick (LRU order inside the
    /// B-tree policies), or the caller's clock under [`Policy::Ttl`]. Not kept under
    /// [`Policy::Lru`], which never reads it.
    last: u32,
}

impl Cold {
    const EMPTY: Cold = Cold {
        dup_next: NIL,
        dup_prev: NIL,
        freq: 0,
        last: 0,
    };
}

/// How evictable cached blocks are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// vLLM v1's order, exactly.
    Lru,
    /// Least frequently used first, least recently used among equals.
    Lfu,
    /// Lowest priority first (see [`Pool::set_priority`]), LRU among equals.
    Priority,
    /// LRU, and idle cached blocks older than `ttl` (caller clock units) stop hitting and are
    /// dropped by [`Pool::expire`].
    Ttl { ttl: u32 },
}

/// What [`Pool::register`] does when the key is already cached on another block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DupPolicy {
    /// vLLM's behaviour: both blocks stay cached (block tables stay append-only); lookups
    /// return the oldest.
    KeepAll,
    /// Keep the cached block, release the new one: the caller's table gets the cached id.
    Dedup,
}

/// Where an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Device,
    Host,
}

/// A KV event, in the shape of vLLM's `BlockStored` / `BlockRemoved` / `AllBlocksCleared`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Stored {
        keys: Vec<Key>,
        parent: Option<Key>,
        block_ids: Vec<BlockId>,
        medium: Medium,
        /// Token ids of the stored blocks, when the caller supplied them (vLLM's events
        /// carry them); empty otherwise.
        tokens: Vec<u32>,
        /// Tokens per block in this event (a partial block stores fewer).
        block_size: u32,
    },
    Removed {
        keys: Vec<Key>,
        medium: Medium,
    },
    Cleared,
}

/// An event with its monotonic id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: u64,
    pub kind: EventKind,
}

/// A device block whose contents must be copied to a host slot before the block is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offload {
    pub block: BlockId,
    pub slot: u32,
    pub key: Key,
}

/// Pool shape and behaviour.
#[derive(Debug, Clone)]
pub struct Config {
    /// Blocks in the pool, the null block included.
    pub num_blocks: usize,
    /// Tokens per block (used for token statistics and persisted-shape checks).
    pub block_size: usize,
    pub policy: Policy,
    pub dup: DupPolicy,
    /// Blocks that [`Pool::allocate`] leaves free unless asked to use the reserve.
    pub reserve: usize,
    pub events: bool,
    /// Slots in the host tier; 0 disables tiering.
    pub host_blocks: usize,
    /// Tag of the hash mode the keys come from (persisted; a restore must match).
    pub hash_tag: u8,
}

impl Config {
    /// A vLLM-like pool: LRU, duplicates kept, no reserve, no tiering.
    pub fn new(num_blocks: usize, block_size: usize) -> Self {
        Self {
            num_blocks,
            block_size,
            policy: Policy::Lru,
            dup: DupPolicy::KeepAll,
            reserve: 0,
            events: false,
            host_blocks: 0,
            hash_tag: 1,
        }
    }
}

/// Counters and gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub num_blocks: usize,
    pub free: usize,
    pub used: usize,
    pub evictable: usize,
    pub pinned: usize,
    pub cached: usize,
    pub query_blocks: u64,
    pub hit_blocks: u64,
    pub query_tokens: u64,
    pub hit_tokens: u64,
    pub evictions: u64,
    pub host_cached: usize,
    pub host_hits: u64,
    pub metadata_bytes_per_block: f64,
}

/// One entry of a persisted index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub block: BlockId,
    pub key: Key,
    pub partial: bool,
    pub pinned: bool,
    pub prio: u8,
    pub freq: u32,
}

/// The block manager.
#[derive(Debug)]
pub struct Pool {
    cfg: Config,
    blocks: Vec<Block>,
    /// Each block's cold metadata, beside `blocks`.
    cold: Vec<Cold>,
    /// Whether `Cold::last` is kept (every policy but LRU reads it).
    keep_last: bool,
    /// Each block's key (0 when un-hashed), beside `blocks` so the hot metadata stays small.
    keys: Vec<Key>,
    head: u32,
    tail: u32,
    list_len: usize,
    tree: BTreeSet<(u64, u32)>,
    index: index::Index,
    used: usize,
    pinned_idle: usize,
    tick: u32,
    now: u32,
    events: Vec<Event>,
    next_event: u64,
    offloads: Vec<Offload>,
    host: Option<Box<Pool>>,
    stats: Stats,
    /// Reused buffer for releases (no allocation per free call).
    scratch: Vec<u32>,
}

impl Pool {
    /// A pool with every block but the null block free, in id order.
    pub fn new(cfg: Config) -> Result<Self> {
        if cfg.num_blocks < 2 || cfg.num_blocks > MAX_BLOCKS {
            return Err(KvError::Config(format!(
                "num_blocks must be in 2..={MAX_BLOCKS}, got {}",
                cfg.num_blocks
            )));
        }
        if cfg.host_blocks >= MAX_BLOCKS {
            return Err(KvError::Config(format!(
                "host_blocks must be below {MAX_BLOCKS}, got {}",
                cfg.host_blocks
            )));
        }
        if cfg.block_size == 0 {
            return Err(KvError::Config("block_size must be > 0".into()));
        }
        if cfg.reserve >= cfg.num_blocks {
            return Err(KvError::Config("reserve must be below num_blocks".into()));
        }
        let host = if cfg.host_blocks > 0 {
            let mut hc = Config::new(cfg.host_blocks + 1, cfg.block_size);
            hc.dup = DupPolicy::Dedup;
            hc.hash_tag = cfg.hash_tag;
            Some(Box::new(Pool::new(hc)?))
        } else {
            None
        };
        let n = cfg.num_blocks;
        // Allocation failure is an error for the caller, not an abort of the interpreter.
        let oom = |what: &str| KvError::Config(format!("cannot allocate {what} for {n} blocks"));
        let mut blocks = Vec::new();
        blocks
            .try_reserve_exact(n)
            .map_err(|_| oom("block metadata"))?;
        blocks.resize(n, Block::EMPTY);
        let mut cold = Vec::new();
        cold.try_reserve_exact(n)
            .map_err(|_| oom("cold block metadata"))?;
        cold.resize(n, Cold::EMPTY);
        let mut keys = Vec::new();
        keys.try_reserve_exact(n).map_err(|_| oom("keys"))?;
        keys.resize(n, 0);
        let index = index::Index::with_capacity(n).ok_or_else(|| oom("the index"))?;
        let mut pool = Pool {
            blocks,
            cold,
            keep_last: cfg.policy != Policy::Lru,
            keys,
            head: NIL,
            tail: NIL,
            list_len: 0,
            tree: BTreeSet::new(),
            index,
            used: 0,
            pinned_idle: 0,
            tick: 0,
            now: 0,
            events: Vec::new(),
            next_event: 0,
            offloads: Vec::new(),
            host,
            stats: Stats::default(),
            scratch: Vec::new(),
            cfg,
        };
        for id in 1..n as u32 {
            pool.list_push_back(id);
            pool.blocks[id as usize].flags = F_FREE;
        }
        Ok(pool)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn emit(&mut self, kind: EventKind) {
        if self.cfg.events {
            self.events.push(Event {
                id: self.next_event,
                kind,
            });
            self.next_event += 1;
        }
    }

    /// The value a block's `last` takes now: the caller's clock under TTL, else a new tick.
    fn stamp(&mut self) -> u32 {
        if self.tick >= TICK_REBASE {
            self.rebase_ticks();
        }
        self.tick += 1;
        if matches!(self.cfg.policy, Policy::Ttl { .. }) {
            self.now
        } else {
            self.tick
        }
    }

    /// Renumber the logical clock before it can wrap. Ticks only order the policy tree's
    /// blocks, so they are renumbered 1..=k in tree order (keeping every key's order) and the
    /// clock restarts after them; other blocks are stamped again before they enter the tree.
    fn rebase_ticks(&mut self) {
        let order: Vec<u32> = self.tree.iter().map(|&(_, id)| id).collect();
        for (i, &id) in order.iter().enumerate() {
            self.cold[id as usize].last = i as u32 + 1;
        }
        self.tree = order.iter().map(|&id| self.tree_key(id)).collect();
        self.tick = order.len() as u32;
    }

    /// Move the logical clock (tests of the rebase only).
    #[doc(hidden)]
    pub fn debug_set_tick(&mut self, tick: u32) {
        self.tick = tick;
    }

    /// Prefetch a block's metadata and key (`id` must be in range).
    fn prefetch_block(&self, id: usize) {
        prefetch(&self.blocks[id]);
        prefetch(&self.keys[id]);
    }

    /// Prefetch the index lines these keys probe first: a caller that will look them up or
    /// register them soon lets the misses overlap its other work.
    pub fn prefetch_keys(&self, keys: &[Key]) {
        for &k in keys {
            self.index_prefetch(k);
        }
    }

    /// Ready the next allocation, at the start of a call that may allocate: the head's
    /// metadata and key were prefetched when the last allocation ended, so reading them here
    /// should not stall, and the misses this starts (the head's index line, the block after
    /// it) overlap the caller's lookups before the allocation needs them.
    pub fn prefetch_allocation(&self) {
        if self.head != NIL {
            self.prefetch_victim(self.head);
        }
    }

    /// Prefetch the blocks and index lines a registration of `ids` under `keys` reads first.
    pub fn prefetch_register(&self, ids: &[BlockId], keys: &[Key]) {
        for (&id, &k) in ids.iter().zip(keys).take(PREFETCH_AHEAD) {
            if (id as usize) < self.blocks.len() {
                self.prefetch_block(id as usize);
            }
            self.index_prefetch(k);
        }
    }

    /// For the free list's head `h`, about to be taken: prefetch the index line its key
    /// probes (when hashed: evicting it removes that entry), and the metadata and key of the
    /// block after it. It reads `h`'s metadata and key: in a loop, ask for them one block
    /// earlier (see [`Pool::prefetch_block`]).
    fn prefetch_victim(&self, h: u32) {
        let b = &self.blocks[h as usize];
        if b.has(F_HASHED) {
            self.index_prefetch(self.keys[h as usize]);
        }
        if b.next != NIL {
            self.prefetch_block(b.next as usize);
        }
    }

    fn check_id(&self, id: u32) -> Result<()> {
        if id == NULL_BLOCK || id as usize >= self.blocks.len() {
            return Err(KvError::InvalidBlock(id));
        }
        Ok(())
    }

    fn is_live(&self, id: u32) -> bool {
        match self.cfg.policy {
            Policy::Ttl { ttl } => {
                let b = &self.blocks[id as usize];
                b.ref_cnt > 0
                    || b.has(F_PINNED)
                    || self.now.saturating_sub(self.cold[id as usize].last) < ttl
            }
            _ => true,
        }
    }

    // ---- lookup -----------------------------------------------------------------------------

    /// The longest cached prefix of `keys` (stops at the first miss), without side effects:
    /// a router's estimate. Hit block ids are appended to `out` when given.
    pub fn lookup(&self, keys: &[Key], mut out: Option<&mut Vec<BlockId>>) -> usize {
        let mut n = 0;
        self.prefetch_keys(&keys[..keys.len().min(PREFETCH_AHEAD)]);
        for (i, &k) in keys.iter().enumerate() {
            if let Some(&a) = keys.get(i + PREFETCH_AHEAD) {
                self.index_prefetch(a);
            }
            match self.index_find(k).and_then(|head| self.first_live(head)) {
                Some(id) => {
                    if let Some(o) = out.as_deref_mut() {
                        o.push(id);
                    }
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// The oldest live block of a duplicate chain: the head, except under TTL, where a stale
    /// head must not hide a fresh duplicate computed after it expired.
    fn first_live(&self, head: u32) -> Option<u32> {
        let mut id = head;
        loop {
            if self.is_live(id) {
                return Some(id);
            }
            id = self.dup_next(id);
            if id == NIL {
                return None;
            }
        }
    }

    /// Lookup for admission: take a reference on every hit block (reviving evictable ones) and
    /// count the query in the statistics. Hit ids are appended to `out`.
    pub fn acquire(&mut self, keys: &[Key], out: &mut Vec<BlockId>) -> usize {
        let start = out.len();
        let n = self.lookup(keys, Some(out));
        let hits: Vec<BlockId> = out[start..].to_vec();
        for id in hits {
            self.touch_one(id);
        }
        self.count_query(keys.len(), n);
        n
    }

    /// Count a query of `queried` blocks of which `hit` hit (for callers that look up and
    /// touch in separate steps, as vLLM's scheduler does).
    pub fn count_query(&mut self, queried: usize, hit: usize) {
        let bs = self.cfg.block_size as u64;
        self.stats.query_blocks += queried as u64;
        self.stats.hit_blocks += hit as u64;
        self.stats.query_tokens += queried as u64 * bs;
        self.stats.hit_tokens += hit as u64 * bs;
    }

    fn touch_one(&mut self, id: u32) {
        let b = self.blocks[id as usize];
        if b.ref_cnt == 0 {
            if b.has(F_FREE) {
                self.take_free(id);
            } else if b.has(F_PINNED) {
                self.pinned_idle -= 1;
            }
            self.used += 1;
        }
        let st = self.stamp();
        self.set_last(id, st);
        self.blocks[id as usize].ref_cnt += 1;
        self.bump_freq(id);
    }

    /// Record a block's release or touch time, where the policy reads it.
    fn set_last(&mut self, id: u32, st: u32) {
        if self.keep_last {
            self.cold[id as usize].last = st;
        }
    }

    /// A block's frequency count (hits plus allocations, saturating).
    pub(super) fn freq(&self, id: u32) -> u32 {
        match self.blocks[id as usize].freq {
            FREQ_SPILLED => self.cold[id as usize].freq,
            f => u32::from(f),
        }
    }

    fn set_freq(&mut self, id: u32, v: u32) {
        if v < u32::from(FREQ_SPILLED) {
            self.blocks[id as usize].freq = v as u16;
        } else {
            self.blocks[id as usize].freq = FREQ_SPILLED;
            self.cold[id as usize].freq = v;
        }
    }

    fn bump_freq(&mut self, id: u32) {
        let b = &mut self.blocks[id as usize];
        if b.freq < FREQ_SPILLED - 1 {
            b.freq += 1;
        } else {
            let v = self.freq(id).saturating_add(1);
            self.set_freq(id, v);
        }
    }

    /// Take a reference on each block (vLLM's `touch`); the null block is skipped.
    pub fn touch(&mut self, ids: &[BlockId]) -> Result<()> {
        for &id in ids {
            if id != NULL_BLOCK {
                self.check_id(id)?;
            }
        }
        for &id in ids {
            if id != NULL_BLOCK {
                self.touch_one(id);
            }
        }
        Ok(())
    }

    // ---- allocation -------------------------------------------------------------------------

    /// Blocks [`Pool::allocate`] can hand out now (without the reserve unless `use_reserve`).
    pub fn allocatable(&self, use_reserve: bool) -> usize {
        let f = self.free_count();
        if use_reserve {
            f
        } else {
            f.saturating_sub(self.cfg.reserve)
        }
    }

    /// Allocate `n` blocks, all or nothing, evicting cached blocks in policy order. Keys of the
    /// evicted blocks are appended to `evicted`; the new ids (reference count 1) to `out`.
    pub fn allocate(
        &mut self,
        n: usize,
        use_reserve: bool,
        out: &mut Vec<BlockId>,
        evicted: &mut Vec<Key>,
    ) -> Result<()> {
        let avail = self.allocatable(use_reserve);
        if n > avail {
            return Err(KvError::OutOfBlocks {
                wanted: n,
                available: avail,
                reserve: if use_reserve { 0 } else { self.cfg.reserve },
            });
        }
        out.reserve(n);
        let first_evicted = evicted.len();
        for _ in 0..n {
            let Some(id) = self.pop_victim() else {
                unreachable!("free_count said enough blocks")
            };
            // The next victim's index line (its key was fetched one block earlier) and the
            // links and key of the block after it.
            let h = self.head;
            if h != NIL {
                self.prefetch_victim(h);
            }
            if self.blocks[id as usize].has(F_HASHED) {
                let key = self.index_remove(id);
                evicted.push(key);
                self.stats.evictions += 1;
                self.offload(id, key);
            }
            let st = self.stamp();
            self.set_last(id, st);
            let b = &mut self.blocks[id as usize];
            b.ref_cnt = 1;
            b.freq = 1;
            b.prio = 0;
            self.used += 1;
            out.push(id);
        }
        // The next allocation takes the free list's head: ask for its metadata and key now,
        // without reading them (that would wait for the misses here), so they arrive while
        // the caller works; the next call reads them in `prefetch_allocation`.
        if self.head != NIL {
            self.prefetch_block(self.head as usize);
        }
        if evicted.len() > first_evicted && self.cfg.events {
            // vLLM emits one BlockRemoved per evicted block.
            let keys: Vec<Key> = evicted[first_evicted..].to_vec();
            for k in keys {
                self.emit(EventKind::Removed {
                    keys: vec![k],
                    medium: Medium::Device,
                });
            }
        }
        Ok(())
    }

    /// Admission in one step, as vLLM's scheduler does it: reference the cached prefix of
    /// `keys` and allocate the rest of the request's `total` blocks, appending both to `table`. Returns `None`, with
    /// nothing changed, when the blocks do not fit (hit blocks that are idle count against
    /// the free blocks too, because taking them removes them from the free list).
    pub fn admit(
        &mut self,
        keys: &[Key],
        total: usize,
        use_reserve: bool,
        table: &mut Vec<BlockId>,
        evicted: &mut Vec<Key>,
    ) -> Result<Option<usize>> {
        self.prefetch_allocation();
        let start = table.len();
        let hits = self.lookup(keys, Some(table));
        let num_new = total.saturating_sub(hits);
        let idle = table[start..]
            .iter()
            .filter(|&&id| self.blocks[id as usize].has(F_FREE))
            .count();
        if num_new + idle > self.allocatable(use_reserve) {
            table.truncate(start);
            return Ok(None);
        }
        for &id in &table[start..] {
            self.touch_one(id);
        }
        self.count_query(keys.len(), hits);
        self.allocate(num_new, use_reserve, table, evicted)?;
        Ok(Some(hits))
    }

    // ---- registration -----------------------------------------------------------------------

    /// Cache full blocks: `ids[i]` now holds the block whose chained hash is `keys[i]`;
    /// `parent` is the key of the block before `ids[0]` (for the stored event). Under
    /// [`DupPolicy::Dedup`] a block whose key is already cached elsewhere is released and the
    /// cached block taken instead; `out` (when given) receives the resulting table entries.
    pub fn register(
        &mut self,
        ids: &[BlockId],
        keys: &[Key],
        parent: Option<Key>,
        out: Option<&mut Vec<BlockId>>,
    ) -> Result<()> {
        self.register_tokens(ids, keys, parent, out, &[])
    }

    /// [`Pool::register`] with the blocks' token ids (`block_size` per block) for the stored
    /// event, so consumers of vLLM-format events get them; `tokens` may be empty.
    pub fn register_tokens(
        &mut self,
        ids: &[BlockId],
        keys: &[Key],
        parent: Option<Key>,
        mut out: Option<&mut Vec<BlockId>>,
        tokens: &[u32],
    ) -> Result<()> {
        let bs = self.cfg.block_size;
        if !tokens.is_empty() && tokens.len() != ids.len() * bs {
            return Err(KvError::Length(format!(
                "{} token ids for {} blocks of {bs}",
                tokens.len(),
                ids.len()
            )));
        }
        if ids.len() != keys.len() {
            return Err(KvError::Length(format!(
                "{} blocks but {} keys",
                ids.len(),
                keys.len()
            )));
        }
        let first = ids.len().min(PREFETCH_AHEAD);
        self.prefetch_keys(&keys[..first]);
        for &a in &ids[..first] {
            if (a as usize) < self.blocks.len() {
                self.prefetch_block(a as usize);
            }
        }
        for (i, (&id, &k)) in ids.iter().zip(keys).enumerate() {
            if let Some(&a) = ids.get(i + PREFETCH_AHEAD) {
                if (a as usize) < self.blocks.len() {
                    self.prefetch_block(a as usize);
                }
                self.index_prefetch(keys[i + PREFETCH_AHEAD]);
            }
            if id == NULL_BLOCK {
                continue;
            }
            self.check_id(id)?;
            let b = &self.blocks[id as usize];
            if b.ref_cnt == 0 {
                return Err(KvError::NotInUse(id));
            }
            if b.has(F_HASHED) && !b.has(F_PARTIAL) && self.keys[id as usize] != k {
                return Err(KvError::AlreadyHashed(id));
            }
        }
        let mut stored = Vec::new();
        let mut stored_ids = Vec::new();
        let mut stored_tokens = Vec::new();
        for (i, (&id, &k)) in ids.iter().zip(keys).enumerate() {
            if id == NULL_BLOCK {
                if let Some(o) = out.as_deref_mut() {
                    o.push(id);
                }
                continue;
            }
            let b = self.blocks[id as usize];
            if b.has(F_HASHED) {
                if self.keys[id as usize] == k && !b.has(F_PARTIAL) {
                    if let Some(o) = out.as_deref_mut() {
                        o.push(id);
                    }
                    continue;
                }
                let old = self.index_remove(id);
                self.emit(EventKind::Removed {
                    keys: vec![old],
                    medium: Medium::Device,
                });
            }
            // Under KeepAll the insert finds the duplicate chain itself: one probe, not two.
            let existing = match self.cfg.dup {
                DupPolicy::Dedup => self.index_find(k),
                DupPolicy::KeepAll => None,
            };
            match (existing, self.cfg.dup) {
                (Some(other), DupPolicy::Dedup) if other != id => {
                    self.touch_one(other);
                    self.release(&[id]);
                    if let Some(o) = out.as_deref_mut() {
                        o.push(other);
                    }
                }
                _ => {
                    self.index_insert(id, k);
                    if self.cfg.events {
                        stored.push(k);
                        stored_ids.push(id);
                        if !tokens.is_empty() {
                            stored_tokens.extend_from_slice(&tokens[i * bs..(i + 1) * bs]);
                        }
                    }
                    if let Some(o) = out.as_deref_mut() {
                        o.push(id);
                    }
                }
            }
        }
        if !stored.is_empty() {
            self.emit(EventKind::Stored {
                keys: stored,
                parent,
                block_ids: stored_ids,
                medium: Medium::Device,
                tokens: stored_tokens,
                block_size: bs as u32,
            });
        }
        Ok(())
    }

    /// Cache a partial trailing block under the hash of its tokens so far. When the block
    /// fills up, [`Pool::register`] replaces this key with the full one.
    pub fn register_partial(&mut self, id: BlockId, key: Key, parent: Option<Key>) -> Result<()> {
        self.check_id(id)?;
        let b = self.blocks[id as usize];
        if b.ref_cnt == 0 {
            return Err(KvError::NotInUse(id));
        }
        if b.has(F_HASHED) && !b.has(F_PARTIAL) {
            return Err(KvError::AlreadyHashed(id));
        }
        if b.has(F_HASHED) {
            if self.keys[id as usize] == key {
                return Ok(());
            }
            let old = self.index_remove(id);
            self.emit(EventKind::Removed {
                keys: vec![old],
                medium: Medium::Device,
            });
        }
        self.index_insert(id, key);
        self.blocks[id as usize].flags |= F_PARTIAL;
        self.emit(EventKind::Stored {
            keys: vec![key],
            parent,
            block_ids: vec![id],
            medium: Medium::Device,
            tokens: Vec::new(),
            block_size: self.cfg.block_size as u32,
        });
        Ok(())
    }

    // ---- release ----------------------------------------------------------------------------

    /// Drop one reference from each block, in eviction-priority order (vLLM's `free_blocks`:
    /// the first block is evicted first). Blocks reaching zero go, un-hashed, to the head of
    /// the free list and, hashed, to its tail. All or nothing: a block that is not in use
    /// fails the call before anything changes.
    pub fn free(&mut self, ordered: &[BlockId]) -> Result<()> {
        self.free_iter(ordered.iter().copied())
    }

    /// Free a request's block table: vLLM frees tail blocks first, so they are evicted first.
    pub fn free_request(&mut self, table: &[BlockId]) -> Result<()> {
        self.free_iter(table.iter().rev().copied())
    }

    /// One pass: each block is touched once. Blocks reaching zero go straight to the tail
    /// (hashed) or are collected and prepended at the end (un-hashed, so the first one ends
    /// up at the head). A block that is not in use undoes the pass and fails the call.
    fn free_iter<I: Iterator<Item = BlockId> + Clone>(&mut self, ordered: I) -> Result<()> {
        let mut pending = std::mem::take(&mut self.scratch);
        pending.clear();
        // Hoisted out of the loop: the common case (LRU or TTL, a hashed block) is an append
        // to the free list's tail, inlined below.
        if self.tick >= TICK_REBASE {
            self.rebase_ticks();
        }
        let list_only = !self.uses_tree();
        let ttl_now = matches!(self.cfg.policy, Policy::Ttl { .. }).then_some(self.now);
        let keep_last = self.keep_last;
        let n = self.blocks.len();
        for a in ordered.clone().take(FREE_AHEAD) {
            if (a as usize) < n {
                prefetch(&self.blocks[a as usize]);
            }
        }
        let mut ahead = ordered.clone().skip(FREE_AHEAD);
        for (i, id) in ordered.clone().enumerate() {
            if let Some(a) = ahead.next() {
                if (a as usize) < n {
                    prefetch(&self.blocks[a as usize]);
                }
            }
            if id == NULL_BLOCK {
                continue;
            }
            if id as usize >= n || self.blocks[id as usize].ref_cnt == 0 {
                self.undo_free(ordered.take(i));
                self.scratch = pending;
                self.check_id(id)?;
                return Err(KvError::NotInUse(id));
            }
            let b = &mut self.blocks[id as usize];
            b.ref_cnt -= 1;
            if b.ref_cnt != 0 {
                continue;
            }
            self.tick += 1;
            if keep_last {
                self.cold[id as usize].last = ttl_now.unwrap_or(self.tick);
            }
            let flags = b.flags;
            self.used -= 1;
            if flags & F_PINNED != 0 {
                self.pinned_idle += 1;
            } else if flags & F_HASHED == 0 {
                pending.push(id);
            } else if list_only {
                let tail = self.tail;
                b.prev = tail;
                b.next = NIL;
                b.flags = flags | F_FREE;
                if tail == NIL {
                    self.head = id;
                } else {
                    self.blocks[tail as usize].next = id;
                }
                self.tail = id;
                self.list_len += 1;
            } else {
                self.put_free(id, false);
            }
        }
        for &id in pending.iter().rev() {
            self.put_free(id, true);
        }
        self.scratch = pending;
        Ok(())
    }

    /// Undo the part of a release already done (see [`Pool::free_iter`]).
    fn undo_free(&mut self, done: impl Iterator<Item = BlockId>) {
        for id in done {
            if id == NULL_BLOCK {
                continue;
            }
            let b = self.blocks[id as usize];
            if b.ref_cnt == 0 {
                if b.has(F_FREE) {
                    self.take_free(id);
                } else if b.has(F_PINNED) {
                    self.pinned_idle -= 1;
                }
                self.used += 1;
            }
            self.blocks[id as usize].ref_cnt += 1;
        }
    }

    /// Internal release of blocks known to be in use.
    fn release(&mut self, ordered: &[BlockId]) {
        let r = self.free_iter(ordered.iter().copied());
        debug_assert!(r.is_ok(), "internal release of a block not in use");
    }

    // ---- explicit eviction, pins, priorities, TTL -------------------------------------------

    /// Drop the hashes of these blocks (in use or not; pinned ones are skipped). Returns the
    /// removed keys.
    pub fn evict(&mut self, ids: &[BlockId]) -> Result<Vec<Key>> {
        for &id in ids {
            self.check_id(id)?;
        }
        let mut removed = Vec::new();
        for &id in ids {
            let b = self.blocks[id as usize];
            if !b.has(F_HASHED) || b.has(F_PINNED) {
                continue;
            }
            let in_tree = b.has(F_IN_TREE);
            if in_tree {
                self.take_free(id);
            }
            removed.push(self.index_remove(id));
            if in_tree {
                self.put_free(id, true);
            }
        }
        for &k in &removed {
            self.emit(EventKind::Removed {
                keys: vec![k],
                medium: Medium::Device,
            });
        }
        Ok(removed)
    }

    /// Pin blocks (a shared system prompt): while pinned and idle they are never evicted.
    pub fn pin(&mut self, ids: &[BlockId]) -> Result<()> {
        for &id in ids {
            self.check_id(id)?;
        }
        for &id in ids {
            let b = self.blocks[id as usize];
            if b.has(F_PINNED) {
                continue;
            }
            if b.has(F_FREE) {
                self.take_free(id);
                self.pinned_idle += 1;
            }
            self.blocks[id as usize].flags |= F_PINNED;
        }
        Ok(())
    }

    /// Unpin blocks; idle ones become evictable again (at the tail: most recently used).
    pub fn unpin(&mut self, ids: &[BlockId]) -> Result<()> {
        for &id in ids {
            self.check_id(id)?;
        }
        for &id in ids {
            let b = self.blocks[id as usize];
            if !b.has(F_PINNED) {
                continue;
            }
            self.blocks[id as usize].flags &= !F_PINNED;
            if b.ref_cnt == 0 {
                self.pinned_idle -= 1;
                let st = self.stamp();
                self.set_last(id, st);
                let hashed = b.has(F_HASHED);
                self.put_free(id, !hashed);
            }
        }
        Ok(())
    }

    /// Set the eviction priority (higher survives longer under [`Policy::Priority`]).
    pub fn set_priority(&mut self, ids: &[BlockId], prio: u8) -> Result<()> {
        for &id in ids {
            self.check_id(id)?;
        }
        for &id in ids {
            let in_tree = self.blocks[id as usize].has(F_IN_TREE);
            if in_tree {
                self.take_free(id);
            }
            self.blocks[id as usize].prio = prio;
            if in_tree {
                self.put_free(id, false);
            }
        }
        Ok(())
    }

    /// Set the caller's clock (seconds, milliseconds: the unit of the TTL).
    pub fn set_time(&mut self, now: u32) {
        self.now = now;
    }

    /// Drop the hashes of idle cached blocks whose TTL ran out. Returns the removed keys.
    pub fn expire(&mut self) -> Vec<Key> {
        let Policy::Ttl { ttl } = self.cfg.policy else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        let mut cur = self.head;
        while cur != NIL {
            let b = self.blocks[cur as usize];
            if b.has(F_HASHED) {
                // Hashed blocks enter the list in release order, so stamps only grow.
                if self.now.saturating_sub(self.cold[cur as usize].last) < ttl {
                    break;
                }
                removed.push(self.index_remove(cur));
            }
            cur = b.next;
        }
        for &k in &removed {
            self.emit(EventKind::Removed {
                keys: vec![k],
                medium: Medium::Device,
            });
        }
        removed
    }

    /// Forget every hash (after a weight update). Fails if any block is in use.
    pub fn reset(&mut self) -> Result<()> {
        if self.used != 0 {
            return Err(KvError::Busy(self.used));
        }
        let mut order = Vec::with_capacity(self.cfg.num_blocks);
        while let Some(id) = self.pop_victim() {
            order.push(id);
        }
        for id in 1..self.blocks.len() as u32 {
            let b = self.blocks[id as usize];
            if b.has(F_PINNED) {
                order.push(id);
            }
        }
        self.index.clear();
        self.pinned_idle = 0;
        for &id in &order {
            self.blocks[id as usize].flags = 0;
            self.keys[id as usize] = 0;
            self.list_push_back(id);
            self.blocks[id as usize].flags = F_FREE;
        }
        self.emit(EventKind::Cleared);
        Ok(())
    }

    // ---- copy-on-write ----------------------------------------------------------------------

    /// Fork a request's block table: the child shares every block (one more reference each).
    pub fn fork(&mut self, table: &[BlockId]) -> Result<Vec<BlockId>> {
        self.touch(table)?;
        Ok(table.to_vec())
    }

    /// Whether the caller may write into the block in place.
    pub fn is_writable(&self, id: BlockId) -> bool {
        let ok = self.check_id(id).is_ok();
        ok && {
            let b = &self.blocks[id as usize];
            b.ref_cnt == 1 && !b.has(F_HASHED)
        }
    }

    /// Make a table slot writable: if the block is shared or cached, allocate a private copy
    /// and drop the reference on the original. Returns `(block, must_copy)`.
    pub fn make_writable(
        &mut self,
        id: BlockId,
        evicted: &mut Vec<Key>,
    ) -> Result<(BlockId, bool)> {
        self.check_id(id)?;
        if self.blocks[id as usize].ref_cnt == 0 {
            return Err(KvError::NotInUse(id));
        }
        if self.is_writable(id) {
            return Ok((id, false));
        }
        let mut out = Vec::with_capacity(1);
        self.allocate(1, false, &mut out, evicted)?;
        self.release(&[id]);
        Ok((out[0], true))
    }

    // ---- events, statistics, persistence ----------------------------------------------------

    /// Whether this pool records events.
    pub fn events_enabled(&self) -> bool {
        self.cfg.events
    }

    /// Drain the pending events (oldest first).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Current gauges and counters.
    pub fn stats(&self) -> Stats {
        let n = self.cfg.num_blocks;
        let cached = self.blocks.iter().filter(|b| b.has(F_HASHED)).count();
        let mut s = self.stats.clone();
        s.num_blocks = n;
        s.free = self.free_count();
        s.used = self.used;
        s.pinned = self.blocks.iter().filter(|b| b.has(F_PINNED)).count();
        s.cached = cached;
        s.evictable = self
            .blocks
            .iter()
            .filter(|b| b.has(F_FREE) && b.has(F_HASHED))
            .count();
        s.host_cached = self.host.as_deref().map_or(0, |h| h.index.len());
        s.metadata_bytes_per_block = self.metadata_bytes() as f64 / n as f64;
        s
    }

    /// Bytes of metadata the pool holds for its blocks: the hot and cold block arrays, the
    /// keys, the index table and the policy tree.
    pub fn metadata_bytes(&self) -> usize {
        (std::mem::size_of::<Block>() + std::mem::size_of::<Cold>() + std::mem::size_of::<Key>())
            * self.blocks.len()
            + self.index.bytes()
            + self.tree.len() * std::mem::size_of::<(u64, u32)>()
    }

    /// Blocks currently free, from next-to-allocate to last (the eviction order).
    pub fn free_order(&self) -> Vec<BlockId> {
        let mut v = Vec::with_capacity(self.free_count());
        let mut cur = self.head;
        while cur != NIL {
            v.push(cur);
            cur = self.blocks[cur as usize].next;
        }
        v.extend(self.tree.iter().map(|&(_, id)| id));
        v
    }

    pub fn ref_count(&self, id: BlockId) -> Result<u32> {
        self.check_id(id)?;
        Ok(self.blocks[id as usize].ref_cnt)
    }

    /// The key a block is cached under, if any.
    pub fn block_key(&self, id: BlockId) -> Result<Option<Key>> {
        self.check_id(id)?;
        let b = &self.blocks[id as usize];
        Ok(b.has(F_HASHED).then(|| self.keys[id as usize]))
    }

    /// The cached blocks in eviction order (idle ones), then the in-use and pinned ones: what
    /// a restarted node needs to rebuild its index.
    pub fn export_index(&self) -> Vec<IndexEntry> {
        let entry = |id: u32| {
            let b = &self.blocks[id as usize];
            IndexEntry {
                block: id,
                key: self.keys[id as usize],
                partial: b.has(F_PARTIAL),
                pinned: b.has(F_PINNED),
                prio: b.prio,
                freq: self.freq(id),
            }
        };
        let mut v: Vec<IndexEntry> = self
            .free_order()
            .into_iter()
            .filter(|&id| self.blocks[id as usize].has(F_HASHED))
            .map(entry)
            .collect();
        for id in 1..self.blocks.len() as u32 {
            let b = &self.blocks[id as usize];
            if b.has(F_HASHED) && !b.has(F_FREE) {
                v.push(entry(id));
            }
        }
        v
    }

    /// Rebuild the index into a pool that holds no hashes and no references (a restarted
    /// node): entries become idle cached blocks, evicted in the given order.
    pub fn import_index(&mut self, entries: &[IndexEntry]) -> Result<()> {
        if self.used != 0 {
            return Err(KvError::Busy(self.used));
        }
        if !self.index.is_empty() {
            return Err(KvError::Corrupt("the pool already holds an index".into()));
        }
        let mut seen = vec![false; self.blocks.len()];
        let mut keys = std::collections::HashSet::with_capacity(entries.len());
        for e in entries {
            if e.block == NULL_BLOCK || e.block as usize >= self.blocks.len() {
                return Err(KvError::Corrupt(format!(
                    "block id {} out of range",
                    e.block
                )));
            }
            if std::mem::replace(&mut seen[e.block as usize], true) {
                return Err(KvError::Corrupt(format!("block {} listed twice", e.block)));
            }
            if !keys.insert(e.key) && self.cfg.dup == DupPolicy::Dedup {
                return Err(KvError::Corrupt("duplicate key under dedup policy".into()));
            }
        }
        for e in entries {
            let id = e.block;
            self.take_free(id);
            self.index_insert(id, e.key);
            self.set_freq(id, e.freq);
            let b = &mut self.blocks[id as usize];
            b.prio = e.prio;
            if e.partial {
                b.flags |= F_PARTIAL;
            }
            if e.pinned {
                b.flags |= F_PINNED;
                self.pinned_idle += 1;
            } else {
                let st = self.stamp();
                self.set_last(id, st);
                self.put_free(id, false);
            }
        }
        Ok(())
    }
}
