//! The structural invariants, checked in O(n) by the property tests (Rust and Python).

use super::*;

impl Pool {
    /// Check every structural invariant; `Err` describes the first violation. Used by the
    /// property tests (Rust and Python); O(n).
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let n = self.blocks.len();
        // The free list: a well-linked chain, no repeats, all marked free and idle.
        let mut in_list = vec![false; n];
        let (mut cur, mut prev, mut len) = (self.head, NIL, 0usize);
        while cur != NIL {
            if cur as usize >= n || cur == NULL_BLOCK {
                return Err(format!("bad id {cur} in free list"));
            }
            if std::mem::replace(&mut in_list[cur as usize], true) {
                return Err(format!("block {cur} twice in free list"));
            }
            let b = &self.blocks[cur as usize];
            if b.prev != prev {
                return Err(format!("block {cur}: prev link {} != {prev}", b.prev));
            }
            prev = cur;
            cur = b.next;
            len += 1;
        }
        if prev != self.tail || len != self.list_len {
            return Err("free list tail or length out of sync".into());
        }
        let mut in_tree = vec![false; n];
        for &(k, id) in &self.tree {
            if self.tree_key(id).0 != k {
                return Err(format!("stale tree key for block {id}"));
            }
            in_tree[id as usize] = true;
        }
        let (mut used, mut pinned_idle) = (0, 0);
        for id in 1..n {
            let b = &self.blocks[id];
            let free = in_list[id] || in_tree[id];
            if in_list[id] && in_tree[id] {
                return Err(format!("block {id} in list and tree"));
            }
            if free != b.has(F_FREE) || in_tree[id] != b.has(F_IN_TREE) {
                return Err(format!("block {id}: free flags disagree with structures"));
            }
            if in_tree[id] && !b.has(F_HASHED) {
                return Err(format!("un-hashed block {id} in the policy tree"));
            }
            match (free, b.ref_cnt, b.has(F_PINNED)) {
                (true, 0, false) => {}
                (true, _, _) => return Err(format!("free block {id} in use or pinned")),
                (false, 0, true) => pinned_idle += 1,
                (false, 0, false) => return Err(format!("block {id} lost: idle, not free")),
                (false, _, _) => used += 1,
            }
            if b.has(F_HASHED) {
                // Reachable from the index, through its key's duplicate chain, whose links
                // agree both ways (the head's back link is the chain's last block).
                let key = self.keys[id];
                let Some(head) = self.index_find(key) else {
                    return Err(format!("hashed block {id}: key not in the index"));
                };
                let (mut x, mut prev, mut found, mut len) = (head, NIL, false, 0usize);
                while x != NIL {
                    if self.keys[x as usize] != key {
                        return Err(format!("block {x} in the chain of another key"));
                    }
                    let dp = self.dup_prev(x);
                    if prev != NIL && dp != prev {
                        return Err(format!("block {x}: dup_prev {dp} != {prev}"));
                    }
                    found |= x as usize == id;
                    prev = x;
                    x = self.dup_next(x);
                    len += 1;
                    if len > n {
                        return Err(format!("duplicate chain of block {id} cycles"));
                    }
                }
                // The duplicate flag is set exactly on the blocks of chains of two or more.
                if b.has(F_DUP) != (len > 1) {
                    return Err(format!(
                        "block {id}: duplicate flag {} in a chain of {len}",
                        b.has(F_DUP)
                    ));
                }
                if self.dup_prev(head) != prev {
                    return Err(format!(
                        "chain head {head} does not point to its last block"
                    ));
                }
                if !found {
                    return Err(format!("hashed block {id} unreachable from the index"));
                }
            } else if b.has(F_DUP) || b.has(F_PARTIAL) {
                return Err(format!("un-hashed block {id} in a duplicate chain"));
            }
        }
        if used != self.used || pinned_idle != self.pinned_idle {
            return Err(format!(
                "counters: used {used} vs {}, pinned idle {pinned_idle} vs {}",
                self.used, self.pinned_idle
            ));
        }
        let nb = &self.blocks[NULL_BLOCK as usize];
        if nb.flags != 0 || nb.ref_cnt != 0 {
            return Err("the null block changed".into());
        }
        for head in self.index.iter() {
            let b = &self.blocks[head as usize];
            if !b.has(F_HASHED) {
                return Err(format!("index points at un-hashed block {head}"));
            }
            if self.cfg.dup == DupPolicy::Dedup && self.dup_next(head) != NIL {
                return Err("duplicate cached under dedup policy".into());
            }
        }
        if let Some(h) = &self.host {
            h.check_invariants()
                .map_err(|e| format!("host tier: {e}"))?;
        }
        Ok(())
    }
}
