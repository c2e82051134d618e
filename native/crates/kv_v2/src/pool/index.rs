//! The prefix index: an open-addressing table of block ids whose probe unit is one cache line.
//!
//! Each 64-byte group holds 12 slots: 16 tag bytes (12 used) and 12 block ids. A lookup,
//! insert or removal usually reads one line, tags and ids together, where a SwissTable of
//! `u32`s (hashbrown) keeps its control bytes and its entries in two arrays, two misses per
//! probe on a pool too big for L2. And because the line a key lands in is known from its hash
//! alone, the batched loops can prefetch it a few keys ahead ([`Index::prefetch`]), which
//! hashbrown's API cannot offer.
//!
//! The table stores ids only; keys stay in the pool's key array, so callers pass equality as
//! a closure. Tags: `EMPTY` 0, `PAD` 1 (the 3 unused tag bytes), 2..=255 a full slot; the
//! last tag byte counts the entries that probed past this full group (F14's overflow count),
//! so a probe stops at the first group nobody overflowed from, and a removal simply empties
//! its slot and decrements the counts on its probe path: no tombstones, no rebuilds. The table
//! never grows: the pool sizes it for every block at 7/8 load at most.

use crate::hints::prefetch;

const SLOTS: usize = 12;
const EMPTY: u8 = 0;
const PAD: u8 = 1;
/// Tag byte holding the group's overflow count.
const OVERFLOW: usize = 15;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Group {
    tags: [u8; 16],
    ids: [u32; SLOTS],
}

impl Group {
    const EMPTY: Group = Group {
        tags: [
            EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
            PAD, PAD, PAD, 0,
        ],
        ids: [0; SLOTS],
    };

    /// Slots whose tag is `t`, one bit per slot (SWAR over the tag bytes as two `u64`s;
    /// exact, no false positives).
    #[inline(always)]
    fn matching(&self, t: u8) -> u32 {
        let b = u64::from(t) * LO;
        let lo = u64::from_le_bytes([
            self.tags[0],
            self.tags[1],
            self.tags[2],
            self.tags[3],
            self.tags[4],
            self.tags[5],
            self.tags[6],
            self.tags[7],
        ]) ^ b;
        let hi = u64::from(u32::from_le_bytes([
            self.tags[8],
            self.tags[9],
            self.tags[10],
            self.tags[11],
        ])) ^ (b & 0xffff_ffff);
        compress(zero_bytes(lo)) | compress(zero_bytes(hi) & 0x8080_8080) << 8
    }
}

/// 0x01 in every byte.
const LO: u64 = u64::MAX / 0xff;
/// 0x80 in every byte.
const HI: u64 = LO << 7;

/// 0x80 in each byte of `x` that is zero, 0 elsewhere.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    !(((x & !HI) + !HI) | x) & HI
}

/// The high bits of the 8 bytes of a [`zero_bytes`] mask, as 8 bits.
#[inline(always)]
fn compress(m: u64) -> u32 {
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// The slot of the lowest match in a [`Group::matching`] mask.
#[inline(always)]
fn first(m: u32) -> usize {
    m.trailing_zeros() as usize
}

/// Where an entry is, for [`Index::set`] and [`Index::remove`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    group: usize,
    slot: usize,
    /// Groups probed past to get here from the hash's home group.
    dist: usize,
}

#[derive(Debug)]
pub(super) struct Index {
    groups: Vec<Group>,
    mask: usize,
    items: usize,
}

fn tag(hash: u64) -> u8 {
    let t = (hash >> 56) as u8;
    if t < 2 {
        t + 2
    } else {
        t
    }
}

impl Index {
    /// An index for up to `n` entries (at most 7/8 of its slots full). `None` when the memory
    /// cannot be had.
    pub(super) fn with_capacity(n: usize) -> Option<Index> {
        let want = n.max(1).saturating_mul(8).div_ceil(7).div_ceil(SLOTS);
        let ng = want.checked_next_power_of_two()?;
        let mut groups = Vec::new();
        groups.try_reserve_exact(ng).ok()?;
        groups.resize(ng, Group::EMPTY);
        Some(Index {
            groups,
            mask: ng - 1,
            items: 0,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.items
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Bytes the table holds.
    pub(super) fn bytes(&self) -> usize {
        self.groups.len() * std::mem::size_of::<Group>()
    }

    /// Bring the line `hash` probes first into cache.
    #[inline(always)]
    pub(super) fn prefetch(&self, hash: u64) {
        prefetch(&self.groups[hash as usize & self.mask]);
    }

    /// The slot holding an id for which `eq` holds, probing from `hash`'s group.
    #[inline]
    pub(super) fn find_slot(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<Slot> {
        let t = tag(hash);
        let mut g = hash as usize & self.mask;
        for dist in 0..self.groups.len() {
            let grp = &self.groups[g];
            let mut m = grp.matching(t);
            while m != 0 {
                let s = first(m);
                if eq(grp.ids[s]) {
                    return Some(Slot {
                        group: g,
                        slot: s,
                        dist,
                    });
                }
                m &= m - 1;
            }
            if grp.tags[OVERFLOW] == 0 {
                return None;
            }
            g = (g + 1) & self.mask;
        }
        None
    }

    #[inline]
    pub(super) fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.find_slot(hash, eq).map(|s| self.get(s))
    }

    pub(super) fn get(&self, s: Slot) -> u32 {
        self.groups[s.group].ids[s.slot]
    }

    pub(super) fn set(&mut self, s: Slot, id: u32) {
        self.groups[s.group].ids[s.slot] = id;
    }

    /// Empty the slot at `s` and take the entry off the overflow counts of the groups it
    /// probed past (a saturated count stays: it can no longer be kept exact).
    pub(super) fn remove(&mut self, s: Slot) {
        self.groups[s.group].tags[s.slot] = EMPTY;
        let mut g = s.group;
        for _ in 0..s.dist {
            g = g.wrapping_sub(1) & self.mask;
            let c = &mut self.groups[g].tags[OVERFLOW];
            if *c != u8::MAX {
                *c -= 1;
            }
        }
        self.items -= 1;
    }

    /// The id of an entry for which `eq` holds, or, if there is none, insert `id` and return
    /// `None`.
    #[inline]
    pub(super) fn find_or_insert(
        &mut self,
        hash: u64,
        id: u32,
        eq: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        if let Some(s) = self.find_slot(hash, eq) {
            return Some(self.get(s));
        }
        assert!(self.items < self.groups.len() * SLOTS, "the index is full");
        let t = tag(hash);
        let mut g = hash as usize & self.mask;
        loop {
            let grp = &mut self.groups[g];
            let e = grp.matching(EMPTY);
            if e != 0 {
                let s = first(e);
                grp.tags[s] = t;
                grp.ids[s] = id;
                self.items += 1;
                return None;
            }
            grp.tags[OVERFLOW] = grp.tags[OVERFLOW].saturating_add(1);
            g = (g + 1) & self.mask;
        }
    }

    pub(super) fn clear(&mut self) {
        self.groups.fill(Group::EMPTY);
        self.items = 0;
    }

    /// Every id in the table (any order).
    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.groups
            .iter()
            .flat_map(|g| (0..SLOTS).filter_map(move |s| (g.tags[s] >= 2).then_some(g.ids[s])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: u32) -> u64 {
        super::super::links::key_hash(u128::from(k))
    }

    #[test]
    fn insert_find_remove_under_churn() {
        // Keys are their ids; a tiny table so groups overflow constantly.
        let mut ix = Index::with_capacity(20).unwrap();
        let mut live = std::collections::BTreeSet::new();
        let mut x = 12345u64;
        for step in 0..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (x >> 40) as u32 % 40 + 1;
            if live.contains(&k) {
                let s = ix.find_slot(h(k), |id| id == k).expect("live key found");
                assert_eq!(ix.get(s), k);
                ix.remove(s);
                live.remove(&k);
            } else if live.len() < 20 {
                assert_eq!(ix.find_or_insert(h(k), k, |id| id == k), None);
                live.insert(k);
            }
            assert_eq!(ix.len(), live.len(), "step {step}");
            for k in 1..=40 {
                assert_eq!(ix.find(h(k), |id| id == k).is_some(), live.contains(&k));
            }
        }
        let mut all: Vec<u32> = ix.iter().collect();
        all.sort_unstable();
        assert_eq!(all, live.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_present_key_is_returned_not_inserted() {
        let mut ix = Index::with_capacity(4).unwrap();
        assert_eq!(ix.find_or_insert(h(7), 7, |id| id == 7), None);
        // Another id under the same key (a duplicate block): the existing head comes back.
        assert_eq!(ix.find_or_insert(h(7), 9, |id| id == 7), Some(7));
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn groups_are_one_cache_line() {
        assert_eq!(std::mem::size_of::<Group>(), 64);
        assert_eq!(std::mem::align_of::<Group>(), 64);
    }
}
