//! The map from request id to block table entry behind [`crate::Requests`].
//!
//! Open addressing with linear probing over one-cache-line entries, each holding the request
//! id and its table's buffer headers, so finding a request reads one line. Called from Python
//! on a 100k-block pool, every line a call touches has usually been evicted by the interpreter
//! since the request's last step; std's `HashMap` read a control line and then an 88-byte
//! bucket spanning two more, one after the other. Deletion shifts entries back (no
//! tombstones), and the table stays at most half full.

use crate::arena::Span;

/// One request's table: where its block ids and keys are in the arenas. One cache line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Entry {
    pub(crate) blocks: Span,
    pub(crate) keys: Span,
    /// Leading blocks already in the prefix index (hits, or registered by
    /// [`crate::Requests::commit`]).
    pub(crate) cached: usize,
    rid: u64,
    /// Always true: its unused bit patterns are the niche that makes an empty slot
    /// (`None`) cost no extra byte.
    _niche: bool,
}

impl Entry {
    pub(crate) fn new(blocks: Span, keys: Span, cached: usize) -> Entry {
        Entry {
            blocks,
            keys,
            cached,
            rid: 0,
            _niche: true,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Option<Entry>>() == 64);

const MIN_SLOTS: usize = 16;

/// Request ids are the caller's counters, not attacker-chosen keys: one multiply mixes them
/// well enough.
fn home(rid: u64, mask: usize) -> usize {
    ((rid ^ (rid >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

#[derive(Debug, Default)]
pub(crate) struct ReqMap {
    slots: Vec<Option<Entry>>,
    len: usize,
}

impl ReqMap {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot holding `rid`, if any.
    fn find(&self, rid: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = home(rid, mask);
        loop {
            match &self.slots[i] {
                None => return None,
                Some(t) if t.rid == rid => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    pub(crate) fn contains(&self, rid: u64) -> bool {
        self.find(rid).is_some()
    }

    pub(crate) fn get(&self, rid: u64) -> Option<&Entry> {
        self.find(rid).and_then(|i| self.slots[i].as_ref())
    }

    pub(crate) fn get_mut(&mut self, rid: u64) -> Option<&mut Entry> {
        self.find(rid).and_then(|i| self.slots[i].as_mut())
    }

    /// Insert `t` as `rid`'s table; `rid` must not be present.
    pub(crate) fn insert(&mut self, rid: u64, mut t: Entry) {
        debug_assert!(!self.contains(rid));
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        t.rid = rid;
        let mask = self.mask();
        let mut i = home(rid, mask);
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some(t);
        self.len += 1;
    }

    /// Remove and return `rid`'s table.
    pub(crate) fn remove(&mut self, rid: u64) -> Option<Entry> {
        let mut hole = self.find(rid)?;
        let out = self.slots[hole].take();
        self.len -= 1;
        // Backward-shift deletion: move up every later entry of the run whose home is not
        // between the hole and its slot, so no probe sequence crosses an empty slot.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let Some(t) = &self.slots[j] else { break };
            let h = home(t.rid, mask);
            let stays = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !stays {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
        out
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, (0..n).map(|_| None).collect());
        self.len = 0;
        for t in old.into_iter().flatten() {
            let rid = t.rid;
            self.insert(rid, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn table(n: u32) -> Entry {
        Entry::new(Span::default(), Span::default(), n as usize)
    }

    /// Random inserts and removals, with ids that collide on their home slot, checked
    /// against a `HashMap` after every step.
    #[test]
    fn agrees_with_a_hashmap() {
        let mut m = ReqMap::default();
        let mut want: HashMap<u64, u32> = HashMap::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..50_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // A small id space forces long runs and wrap-around at the table's end.
            let rid = if step % 3 == 0 {
                x % 97
            } else {
                x % 41 * 1_000_003
            };
            if want.contains_key(&rid) && x % 5 < 3 {
                let got = m.remove(rid).unwrap();
                assert_eq!(got.cached, want.remove(&rid).unwrap() as usize);
            } else if let std::collections::hash_map::Entry::Vacant(e) = want.entry(rid) {
                m.insert(rid, table(step));
                e.insert(step);
            }
            assert_eq!(m.len(), want.len());
            if step % 97 == 0 {
                for (&r, &v) in &want {
                    assert_eq!(m.get(r).unwrap().cached, v as usize);
                }
                assert!(m.get(u64::MAX).is_none());
            }
        }
        for (&r, &v) in &want {
            assert_eq!(m.get_mut(r).unwrap().cached, v as usize);
        }
    }
}
