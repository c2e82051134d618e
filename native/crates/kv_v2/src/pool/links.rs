//! The two intrusive structures of the pool: the doubly linked free list (with the B-tree the
//! non-LRU policies order evictable blocks in) and the prefix index (block ids in [`super::index`],
//! keyed by the keys array, duplicates chained through the blocks).

use super::*;

pub(super) fn key_hash(k: Key) -> u64 {
    // Keys are usually hash outputs already, but callers may index anything (small integers
    // in tests, other routers' ids): a folded multiply spreads every bit into the table's
    // bucket bits and tag bits alike.
    let x = (k as u64) ^ ((k >> 64) as u64).rotate_left(32);
    let m = u128::from(x) * 0x9E37_79B9_7F4A_7C15_u128;
    (m as u64) ^ ((m >> 64) as u64)
}

impl Pool {
    // ---- the doubly linked free list --------------------------------------------------------

    pub(super) fn list_push_back(&mut self, id: u32) {
        let t = self.tail;
        let b = &mut self.blocks[id as usize];
        b.prev = t;
        b.next = NIL;
        if t == NIL {
            self.head = id;
        } else {
            self.blocks[t as usize].next = id;
        }
        self.tail = id;
        self.list_len += 1;
    }

    pub(super) fn list_push_front(&mut self, id: u32) {
        let h = self.head;
        let b = &mut self.blocks[id as usize];
        b.next = h;
        b.prev = NIL;
        if h == NIL {
            self.tail = id;
        } else {
            self.blocks[h as usize].prev = id;
        }
        self.head = id;
        self.list_len += 1;
    }

    pub(super) fn list_remove(&mut self, id: u32) {
        let Block { prev, next, .. } = self.blocks[id as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.blocks[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.blocks[next as usize].prev = prev;
        }
        let b = &mut self.blocks[id as usize];
        b.prev = NIL;
        b.next = NIL;
        self.list_len -= 1;
    }

    // ---- the free structure -----------------------------------------------------------------

    pub(super) fn uses_tree(&self) -> bool {
        matches!(self.cfg.policy, Policy::Lfu | Policy::Priority)
    }

    pub(super) fn tree_key(&self, id: u32) -> (u64, u32) {
        let last = u64::from(self.cold[id as usize].last);
        let k = match self.cfg.policy {
            Policy::Lfu => (u64::from(self.freq(id)) << 32) | last,
            _ => (u64::from(self.blocks[id as usize].prio) << 32) | last,
        };
        (k, id)
    }

    /// Put a block with reference count 0 where allocation can find it.
    pub(super) fn put_free(&mut self, id: u32, front: bool) {
        let hashed = self.blocks[id as usize].has(F_HASHED);
        if self.uses_tree() && hashed {
            let k = self.tree_key(id);
            self.tree.insert(k);
            self.blocks[id as usize].flags |= F_FREE | F_IN_TREE;
            return;
        }
        if front {
            self.list_push_front(id);
        } else {
            self.list_push_back(id);
        }
        self.blocks[id as usize].flags |= F_FREE;
    }

    pub(super) fn take_free(&mut self, id: u32) {
        let f = self.blocks[id as usize].flags;
        if f & F_IN_TREE != 0 {
            let k = self.tree_key(id);
            self.tree.remove(&k);
        } else {
            self.list_remove(id);
        }
        self.blocks[id as usize].flags &= !(F_FREE | F_IN_TREE);
    }

    pub(super) fn pop_victim(&mut self) -> Option<u32> {
        let id = if self.head != NIL {
            self.head
        } else {
            self.tree.first()?.1
        };
        self.take_free(id);
        Some(id)
    }

    pub(super) fn free_count(&self) -> usize {
        self.list_len + self.tree.len()
    }

    // ---- the prefix index -------------------------------------------------------------------

    pub(super) fn index_find(&self, key: Key) -> Option<u32> {
        let keys = &self.keys;
        self.index
            .find(key_hash(key), |id| keys[id as usize] == key)
    }

    /// Prefetch the index line `key` probes first.
    pub(super) fn index_prefetch(&self, key: Key) {
        self.index.prefetch(key_hash(key));
    }

    /// The next block of `id`'s duplicate chain (NIL at its end or for an un-hashed block).
    pub(super) fn dup_next(&self, id: u32) -> u32 {
        if self.blocks[id as usize].has(F_DUP) {
            self.cold[id as usize].dup_next
        } else {
            NIL
        }
    }

    /// The previous block of `id`'s duplicate chain; for the chain's head, its last block
    /// (itself when alone); NIL for an un-hashed block.
    pub(super) fn dup_prev(&self, id: u32) -> u32 {
        let b = &self.blocks[id as usize];
        if b.has(F_DUP) {
            self.cold[id as usize].dup_prev
        } else if b.has(F_HASHED) {
            id
        } else {
            NIL
        }
    }

    pub(super) fn index_insert(&mut self, id: u32, key: Key) {
        self.keys[id as usize] = key;
        let f = &mut self.blocks[id as usize].flags;
        *f = (*f | F_HASHED) & !F_DUP;
        // One probe: the entry is either the chain's head or the slot the block takes.
        let keys = &self.keys;
        let found = self
            .index
            .find_or_insert(key_hash(key), id, |b| b != id && keys[b as usize] == key);
        // Alone under its key, the block needs no cold links; a duplicate is appended after the
        // chain's last block, which the head points back to.
        if let Some(head) = found {
            let h = head as usize;
            let tail = if self.blocks[h].has(F_DUP) {
                self.cold[h].dup_prev
            } else {
                self.blocks[h].flags |= F_DUP;
                head
            };
            self.cold[tail as usize].dup_next = id;
            let c = &mut self.cold[id as usize];
            c.dup_next = NIL;
            c.dup_prev = tail;
            self.cold[h].dup_prev = id;
            self.blocks[id as usize].flags |= F_DUP;
        }
    }

    /// Drop a block's hash; returns the key it had. A block alone under its key (no
    /// [`F_DUP`]) is removed without reading its cold links.
    pub(super) fn index_remove(&mut self, id: u32) -> Key {
        let key = self.keys[id as usize];
        let (next, prev) = if self.blocks[id as usize].has(F_DUP) {
            let c = &self.cold[id as usize];
            (c.dup_next, c.dup_prev)
        } else {
            (NIL, id)
        };
        let keys = &self.keys;
        let mut head = NIL;
        if let Some(slot) = self
            .index
            .find_slot(key_hash(key), |b| b == id || keys[b as usize] == key)
        {
            head = self.index.get(slot);
            if head == id {
                if next == NIL {
                    self.index.remove(slot);
                } else {
                    self.index.set(slot, next);
                }
            }
        }
        if head == NIL {
            // Not indexed (cannot happen for a hashed block): nothing to unlink.
        } else if head == id {
            if next != NIL {
                // The new head points back to the chain's last block; alone, it is no
                // longer a duplicate.
                let c = &mut self.cold[next as usize];
                c.dup_prev = prev;
                if c.dup_next == NIL {
                    self.blocks[next as usize].flags &= !F_DUP;
                }
            }
        } else {
            self.cold[prev as usize].dup_next = next;
            if next == NIL {
                self.cold[head as usize].dup_prev = prev;
            } else {
                self.cold[next as usize].dup_prev = prev;
            }
            if self.cold[head as usize].dup_next == NIL {
                self.blocks[head as usize].flags &= !F_DUP;
            }
        }
        self.blocks[id as usize].flags &= !(F_HASHED | F_PARTIAL | F_DUP);
        self.keys[id as usize] = 0;
        key
    }
}
