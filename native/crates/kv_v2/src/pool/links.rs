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
        let b = &self.blocks[id as usize];
        let k = match self.cfg.policy {
            Policy::Lfu => (u64::from(b.freq) << 32) | u64::from(b.last),
            _ => (u64::from(b.prio) << 32) | u64::from(b.last),
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

    pub(super) fn index_insert(&mut self, id: u32, key: Key) {
        self.keys[id as usize] = key;
        self.blocks[id as usize].flags |= F_HASHED;
        self.blocks[id as usize].dup_next = NIL;
        // One probe: the entry is either the chain's head or the slot the block takes.
        let keys = &self.keys;
        let found = self
            .index
            .find_or_insert(key_hash(key), id, |b| b != id && keys[b as usize] == key);
        match found {
            None => {
                self.blocks[id as usize].dup_prev = id;
            }
            Some(head) => {
                // Append after the chain's last block, which the head points back to.
                let tail = self.blocks[head as usize].dup_prev;
                self.blocks[tail as usize].dup_next = id;
                self.blocks[id as usize].dup_prev = tail;
                self.blocks[head as usize].dup_prev = id;
            }
        }
    }

    /// Drop a block's hash; returns the key it had.
    pub(super) fn index_remove(&mut self, id: u32) -> Key {
        let key = self.keys[id as usize];
        let Block {
            dup_next: next,
            dup_prev: prev,
            ..
        } = self.blocks[id as usize];
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
                // The new head points back to the chain's last block.
                self.blocks[next as usize].dup_prev = prev;
            }
        } else {
            self.blocks[prev as usize].dup_next = next;
            if next == NIL {
                self.blocks[head as usize].dup_prev = prev;
            } else {
                self.blocks[next as usize].dup_prev = prev;
            }
        }
        let b = &mut self.blocks[id as usize];
        b.dup_next = NIL;
        b.dup_prev = NIL;
        b.flags &= !(F_HASHED | F_PARTIAL);
        self.keys[id as usize] = 0;
        key
    }
}
