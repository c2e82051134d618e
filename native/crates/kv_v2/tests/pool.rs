//! Behaviour of the pool, one property per test.

use kv_v2::{persist, Config, DupPolicy, EventKind, KvError, Medium, Policy, Pool};

fn pool(n: usize) -> Pool {
    Pool::new(Config::new(n, 4)).unwrap()
}

fn alloc(p: &mut Pool, n: usize) -> (Vec<u32>, Vec<u128>) {
    let (mut ids, mut ev) = (Vec::new(), Vec::new());
    p.allocate(n, false, &mut ids, &mut ev).unwrap();
    (ids, ev)
}

#[test]
fn fresh_pool_hands_out_blocks_in_id_order_and_never_the_null_block() {
    let mut p = pool(5);
    let (ids, ev) = alloc(&mut p, 4);
    assert_eq!(ids, [1, 2, 3, 4]);
    assert!(ev.is_empty());
    let err = p
        .allocate(1, false, &mut Vec::new(), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(
        err,
        KvError::OutOfBlocks {
            wanted: 1,
            available: 0,
            ..
        }
    ));
    p.check_invariants().unwrap();
}

#[test]
fn allocation_is_all_or_nothing() {
    let mut p = pool(5);
    let (a, _) = alloc(&mut p, 2);
    assert!(p
        .allocate(3, false, &mut Vec::new(), &mut Vec::new())
        .is_err());
    assert_eq!(p.stats().free, 2, "a failed allocation takes nothing");
    p.free_request(&a).unwrap();
    p.check_invariants().unwrap();
}

#[test]
fn free_puts_unhashed_at_head_and_hashed_at_tail_in_reverse_table_order() {
    let mut p = pool(9);
    let (t, _) = alloc(&mut p, 4); // 1 2 3 4; free list now 5 6 7 8
    p.register(&t[..2], &[10, 11], None, None).unwrap();
    p.free_request(&t).unwrap();
    // Reverse order: 4 3 un-hashed to the head (4 first), then 2 1 hashed to the tail.
    assert_eq!(p.free_order(), [4, 3, 5, 6, 7, 8, 2, 1]);
    p.check_invariants().unwrap();
}

#[test]
fn lookup_stops_at_first_miss_and_has_no_side_effects() {
    let mut p = pool(9);
    let (t, _) = alloc(&mut p, 3);
    p.register(&t, &[1, 2, 3], None, None).unwrap();
    p.free_request(&t).unwrap();
    let before = p.free_order();
    let mut out = Vec::new();
    assert_eq!(p.lookup(&[1, 2, 9, 3], Some(&mut out)), 2);
    assert_eq!(out, [t[0], t[1]]);
    assert_eq!(p.free_order(), before);
    assert_eq!(p.stats().query_blocks, 0);
    // Admission takes references and counts.
    let mut hits = Vec::new();
    assert_eq!(p.acquire(&[1, 2, 9], &mut hits), 2);
    assert_eq!(p.ref_count(t[0]).unwrap(), 1);
    let s = p.stats();
    assert_eq!((s.query_blocks, s.hit_blocks, s.hit_tokens), (3, 2, 8));
    p.check_invariants().unwrap();
}

#[test]
fn eviction_reports_keys_in_lru_order() {
    let mut p = pool(4);
    let (a, _) = alloc(&mut p, 1);
    p.register(&a, &[100], None, None).unwrap();
    p.free_request(&a).unwrap();
    let (b, _) = alloc(&mut p, 1);
    p.register(&b, &[200], None, None).unwrap();
    p.free_request(&b).unwrap();
    // Free list: 3 (un-hashed), then 1 (key 100), then 2 (key 200).
    let (_, ev) = alloc(&mut p, 3);
    assert_eq!(ev, [100, 200]);
    assert_eq!(p.lookup(&[100], None), 0);
    p.check_invariants().unwrap();
}

#[test]
fn reserve_is_kept_from_admission() {
    let mut cfg = Config::new(6, 4);
    cfg.reserve = 2;
    let mut p = Pool::new(cfg).unwrap();
    assert_eq!(p.allocatable(false), 3);
    assert!(p
        .allocate(4, false, &mut Vec::new(), &mut Vec::new())
        .is_err());
    let mut ids = Vec::new();
    p.allocate(4, true, &mut ids, &mut Vec::new()).unwrap();
    assert_eq!(ids.len(), 4);
}

#[test]
fn double_free_is_an_error_and_changes_nothing() {
    let mut p = pool(5);
    let (t, _) = alloc(&mut p, 2);
    p.free(&[t[0]]).unwrap();
    let before = p.free_order();
    assert_eq!(p.free(&[t[1], t[0]]), Err(KvError::NotInUse(t[0])));
    assert_eq!(p.ref_count(t[1]).unwrap(), 1, "rolled back");
    assert_eq!(p.free_order(), before);
    assert_eq!(p.free(&[99]), Err(KvError::InvalidBlock(99)));
    // The same block twice with one reference: the first release is undone.
    let (u, _) = alloc(&mut p, 1);
    p.register(&u, &[42], None, None).unwrap();
    let before = p.free_order();
    assert_eq!(p.free(&[u[0], t[1], u[0]]), Err(KvError::NotInUse(u[0])));
    assert_eq!(p.ref_count(u[0]).unwrap(), 1);
    assert_eq!(p.ref_count(t[1]).unwrap(), 1);
    assert_eq!(p.free_order(), before);
    assert_eq!(p.stats().used, 2);
    p.check_invariants().unwrap();
}

#[test]
fn duplicates_are_kept_like_vllm_or_deduplicated() {
    let mut p = pool(6);
    let (a, _) = alloc(&mut p, 2);
    p.register(&[a[0]], &[7], None, None).unwrap();
    p.register(&[a[1]], &[7], None, None).unwrap();
    let mut out = Vec::new();
    p.lookup(&[7], Some(&mut out));
    assert_eq!(out, [a[0]], "the oldest duplicate answers");
    p.evict(&[a[0]]).unwrap();
    out.clear();
    p.lookup(&[7], Some(&mut out));
    assert_eq!(out, [a[1]], "the other duplicate still answers");
    p.check_invariants().unwrap();

    // Three duplicates: unlink the middle, then the last, then the head; the oldest remaining
    // always answers, as in vLLM's insertion-ordered dict.
    let mut p = pool(8);
    let (d, _) = alloc(&mut p, 4);
    for &b in &d[..3] {
        p.register(&[b], &[9], None, None).unwrap();
    }
    let who = |p: &Pool| {
        let mut o = Vec::new();
        p.lookup(&[9], Some(&mut o));
        o
    };
    p.evict(&[d[1]]).unwrap();
    assert_eq!(who(&p), [d[0]]);
    p.register(&[d[3]], &[9], None, None).unwrap();
    p.evict(&[d[3]]).unwrap();
    p.check_invariants().unwrap();
    p.evict(&[d[0]]).unwrap();
    assert_eq!(who(&p), [d[2]]);
    p.register(&[d[1]], &[9], None, None).unwrap();
    p.check_invariants().unwrap();
    p.evict(&[d[2]]).unwrap();
    assert_eq!(who(&p), [d[1]]);
    p.check_invariants().unwrap();

    let mut cfg = Config::new(6, 4);
    cfg.dup = DupPolicy::Dedup;
    let mut p = Pool::new(cfg).unwrap();
    let (a, _) = alloc(&mut p, 2);
    p.register(&[a[0]], &[7], None, None).unwrap();
    let mut table = Vec::new();
    p.register(&[a[1]], &[7], None, Some(&mut table)).unwrap();
    assert_eq!(table, [a[0]], "the cached block replaces the duplicate");
    assert_eq!(p.ref_count(a[0]).unwrap(), 2);
    assert_eq!(p.ref_count(a[1]).unwrap(), 0);
    assert_eq!(p.free_order()[0], a[1], "the duplicate is reused first");
    p.check_invariants().unwrap();
}

#[test]
fn partial_block_is_promoted_when_full() {
    let mut cfg = Config::new(4, 4);
    cfg.events = true;
    let mut p = Pool::new(cfg).unwrap();
    let (a, _) = alloc(&mut p, 1);
    p.register_partial(a[0], 55, None).unwrap();
    assert_eq!(p.lookup(&[55], None), 1);
    p.register(&a, &[56], None, None).unwrap();
    assert_eq!(p.lookup(&[55], None), 0);
    assert_eq!(p.lookup(&[56], None), 1);
    assert_eq!(
        p.register(&a, &[57], None, None),
        Err(KvError::AlreadyHashed(a[0]))
    );
    let ev = p.take_events();
    let kinds: Vec<_> = ev.iter().map(|e| &e.kind).collect();
    assert!(matches!(kinds[0], EventKind::Stored { keys, .. } if keys == &[55]));
    assert!(matches!(kinds[1], EventKind::Removed { keys, .. } if keys == &[55]));
    assert!(matches!(kinds[2], EventKind::Stored { keys, .. } if keys == &[56]));
    assert_eq!(ev.iter().map(|e| e.id).collect::<Vec<_>>(), [0, 1, 2]);
    p.check_invariants().unwrap();
}

#[test]
fn pinned_blocks_survive_pressure() {
    let mut p = pool(4);
    let (a, _) = alloc(&mut p, 1);
    p.register(&a, &[1], None, None).unwrap();
    p.pin(&a).unwrap();
    p.free_request(&a).unwrap();
    assert_eq!(p.stats().pinned, 1);
    assert!(p
        .allocate(3, false, &mut Vec::new(), &mut Vec::new())
        .is_err());
    let (b, ev) = alloc(&mut p, 2);
    assert!(ev.is_empty());
    assert_eq!(p.lookup(&[1], None), 1);
    p.unpin(&a).unwrap();
    p.free_request(&b).unwrap();
    p.check_invariants().unwrap();
    let (_, ev) = alloc(&mut p, 3);
    assert_eq!(ev, [1]);
}

#[test]
fn lfu_evicts_the_least_used_block() {
    let mut cfg = Config::new(4, 4);
    cfg.policy = Policy::Lfu;
    let mut p = Pool::new(cfg).unwrap();
    let (t, _) = alloc(&mut p, 2);
    p.register(&t, &[1, 2], None, None).unwrap();
    p.free_request(&t).unwrap();
    for _ in 0..3 {
        let mut h = Vec::new();
        p.acquire(&[1], &mut h);
        p.free_request(&h).unwrap();
    }
    // Block for key 1 was used 4 times, key 2 once: 2 goes first even though 1 is older in
    // release order... after the single un-hashed block.
    let (_, ev) = alloc(&mut p, 2);
    assert_eq!(ev, [2]);
    p.check_invariants().unwrap();
}

#[test]
fn priority_evicts_low_priority_first() {
    let mut cfg = Config::new(4, 4);
    cfg.policy = Policy::Priority;
    let mut p = Pool::new(cfg).unwrap();
    let (t, _) = alloc(&mut p, 3);
    p.register(&t, &[1, 2, 3], None, None).unwrap();
    p.set_priority(&t[..1], 9).unwrap();
    p.free_request(&t).unwrap();
    p.set_priority(&t[2..], 5).unwrap();
    let (_, ev) = alloc(&mut p, 3);
    assert_eq!(ev, [2, 3, 1]);
    p.check_invariants().unwrap();
}

#[test]
fn ttl_stops_hits_and_expires() {
    let mut cfg = Config::new(4, 4);
    cfg.policy = Policy::Ttl { ttl: 10 };
    let mut p = Pool::new(cfg).unwrap();
    p.set_time(100);
    let (t, _) = alloc(&mut p, 2);
    p.register(&t, &[1, 2], None, None).unwrap();
    p.free_request(&t[1..]).unwrap();
    p.set_time(105);
    p.free_request(&t[..1]).unwrap();
    p.set_time(112);
    assert_eq!(p.lookup(&[2], None), 0, "expired");
    assert_eq!(p.lookup(&[1], None), 1, "still fresh");
    assert_eq!(p.expire(), [2]);
    assert_eq!(p.stats().cached, 1);
    p.check_invariants().unwrap();
}

#[test]
fn reset_requires_idle_pool_and_clears() {
    let mut cfg = Config::new(5, 4);
    cfg.events = true;
    let mut p = Pool::new(cfg).unwrap();
    let (t, _) = alloc(&mut p, 2);
    p.register(&t, &[1, 2], None, None).unwrap();
    assert_eq!(p.reset(), Err(KvError::Busy(2)));
    p.pin(&t[..1]).unwrap();
    p.free_request(&t).unwrap();
    p.reset().unwrap();
    assert_eq!(p.lookup(&[1], None), 0);
    assert_eq!(p.stats().free, 4);
    assert_eq!(p.take_events().last().unwrap().kind, EventKind::Cleared);
    p.check_invariants().unwrap();
}

#[test]
fn fork_shares_and_copy_on_write_splits() {
    let mut p = pool(6);
    let (t, _) = alloc(&mut p, 2);
    p.register(&t[..1], &[1], None, None).unwrap();
    let child = p.fork(&t).unwrap();
    assert_eq!(child, t);
    assert_eq!(p.ref_count(t[1]).unwrap(), 2);
    let (nb, copy) = p.make_writable(child[1], &mut Vec::new()).unwrap();
    assert!(copy && nb != t[1]);
    assert_eq!(p.ref_count(t[1]).unwrap(), 1);
    assert!(
        p.is_writable(t[1]),
        "the parent's last block is private again"
    );
    assert!(
        !p.is_writable(t[0]),
        "a cached block is never written in place"
    );
    let (same, copy) = p.make_writable(nb, &mut Vec::new()).unwrap();
    assert_eq!((same, copy), (nb, false));
    p.check_invariants().unwrap();
}

#[test]
fn evicted_blocks_go_to_the_host_tier_and_come_back() {
    let mut cfg = Config::new(4, 4);
    cfg.host_blocks = 2;
    cfg.events = true;
    let mut p = Pool::new(cfg).unwrap();
    let (t, _) = alloc(&mut p, 3);
    p.register(&t, &[1, 2, 3], None, None).unwrap();
    p.free_request(&t).unwrap();
    let (u, ev) = alloc(&mut p, 3);
    assert_eq!(ev, [3, 2, 1]);
    let off = p.take_offloads();
    assert_eq!(off.len(), 3);
    assert_eq!(
        p.stats().host_cached,
        2,
        "the host tier holds its capacity, LRU"
    );
    p.free_request(&u).unwrap();
    assert_eq!(p.lookup(&[1, 2], None), 0);
    assert_eq!(p.lookup_host(&[1, 2], 0), 2);
    let mut evicted = Vec::new();
    let pairs = p.load_from_host(&[1, 2], 0, None, &mut evicted).unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(p.lookup(&[1, 2], None), 2);
    assert!(p.take_events().iter().any(|e| matches!(
        &e.kind,
        EventKind::Stored {
            medium: Medium::Host,
            ..
        }
    )));
    p.check_invariants().unwrap();
}

#[test]
fn index_survives_a_restart_and_corruption_is_refused() {
    let mut p = pool(8);
    let (t, _) = alloc(&mut p, 3);
    p.register(&t, &[1, 2, 3], None, None).unwrap();
    p.free_request(&t).unwrap();
    let bytes = persist::to_bytes(&p).unwrap();
    let mut q = pool(8);
    assert_eq!(persist::from_bytes(&mut q, &bytes).unwrap(), 3);
    assert_eq!(q.lookup(&[1, 2, 3], None), 3);
    assert_eq!(q.free_order(), p.free_order(), "eviction order is kept");
    q.check_invariants().unwrap();

    for cut in [0, 10, bytes.len() - 1] {
        let mut r = pool(8);
        assert!(matches!(
            persist::from_bytes(&mut r, &bytes[..cut]),
            Err(KvError::Corrupt(_))
        ));
        assert_eq!(r.stats().cached, 0, "nothing half-loaded");
    }
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(
        matches!(persist::from_bytes(&mut pool(8), &flipped), Err(KvError::Corrupt(m)) if m.contains("checksum"))
    );
    assert!(matches!(
        persist::from_bytes(&mut pool(9), &bytes),
        Err(KvError::Corrupt(_))
    ));
}

#[test]
fn metadata_stays_under_64_bytes_per_block() {
    let p = pool(100_000);
    let s = p.stats();
    assert!(
        s.metadata_bytes_per_block <= 64.0,
        "{}",
        s.metadata_bytes_per_block
    );
}

#[test]
fn request_tables_admit_grow_commit_free() {
    use kv_v2::Requests;
    let mut p = pool(10);
    let mut r = Requests::new();
    let mut ev = Vec::new();
    assert_eq!(
        r.admit(&mut p, 1, &[1, 2, 3], 4, 3, &mut ev).unwrap(),
        Some(0)
    );
    assert_eq!(r.commit(&mut p, 1, usize::MAX).unwrap(), 3);
    assert!(r.grow(&mut p, 1, &[4], 5, &mut ev).unwrap());
    assert_eq!(r.commit(&mut p, 1, usize::MAX).unwrap(), 1);
    assert_eq!(r.get(1).unwrap().blocks.len(), 5);
    assert_eq!(r.step(&mut p, 1, &[5], 6, &mut ev).unwrap(), Some(1));
    assert_eq!(r.step(&mut p, 1, &[], 60, &mut ev).unwrap(), None);
    assert_eq!(r.get(1).unwrap().blocks.len(), 6);
    // A second request shares the prefix; max_hit caps the hits.
    assert_eq!(
        r.admit(&mut p, 2, &[1, 2, 3, 4], 4, 2, &mut ev).unwrap(),
        Some(2)
    );
    assert_eq!(
        r.admit(&mut p, 2, &[], 1, 0, &mut ev),
        Err(KvError::RequestExists(2))
    );
    assert_eq!(
        r.admit(&mut p, 3, &[], 9, 0, &mut ev).unwrap(),
        None,
        "does not fit"
    );
    assert!(!r.grow(&mut p, 2, &[], 9, &mut ev).unwrap());
    r.fork(&mut p, 2, 4).unwrap();
    assert_eq!(p.ref_count(r.get(2).unwrap().blocks[0]).unwrap(), 3);
    for rid in [1, 2, 4] {
        r.free(&mut p, rid).unwrap();
    }
    assert_eq!(r.free(&mut p, 1), Err(KvError::UnknownRequest(1)));
    assert!(r.is_empty());
    assert_eq!(p.stats().used, 0);
    assert_eq!(p.lookup(&[1, 2, 3, 4], None), 4);
    p.check_invariants().unwrap();
}

#[test]
fn refused_admission_changes_nothing() {
    let mut p = pool(5);
    let (t, _) = alloc(&mut p, 2);
    p.register(&t, &[1, 2], None, None).unwrap();
    p.free_request(&t).unwrap();
    let before = p.free_order();
    let mut table = Vec::new();
    // 2 idle hits leave the free list, so 3 more blocks cannot fit in 4 free.
    assert_eq!(
        p.admit(&[1, 2], 5, false, &mut table, &mut Vec::new())
            .unwrap(),
        None
    );
    assert!(table.is_empty());
    assert_eq!(p.free_order(), before);
    assert_eq!(p.stats().query_blocks, 0);
    assert_eq!(
        p.admit(&[1, 2], 4, false, &mut table, &mut Vec::new())
            .unwrap(),
        Some(2)
    );
    assert_eq!(table.len(), 4);
}

#[test]
fn a_freed_table_s_room_is_reused_and_forks_copy_their_parent() {
    use kv_v2::requests::HUGE_TABLES_FROM;
    use kv_v2::Requests;
    // Ordinary pages, and the huge-page arenas a large pool gets.
    for (n, r) in [
        (10, Requests::new()),
        (HUGE_TABLES_FROM, Requests::for_pool(HUGE_TABLES_FROM)),
    ] {
        table_room_is_reused(pool(n), r);
    }
}

fn table_room_is_reused(mut p: Pool, mut r: kv_v2::Requests) {
    let mut ev = Vec::new();
    assert_eq!(
        r.admit(&mut p, 1, &[1, 2, 3], 4, 3, &mut ev).unwrap(),
        Some(0)
    );
    assert_eq!(r.commit(&mut p, 1, usize::MAX).unwrap(), 3);
    let reserved = r.reserved();
    assert_eq!(r.free(&mut p, 1).unwrap(), 4);
    // The next request takes that room back and holds only its own blocks and keys.
    assert_eq!(r.admit(&mut p, 2, &[1, 9], 3, 1, &mut ev).unwrap(), Some(1));
    assert_eq!(r.reserved(), reserved, "the freed room was reused");
    let t = r.get(2).unwrap();
    assert_eq!((t.blocks.len(), t.keys, t.cached), (3, &[1, 9][..], 1));
    assert_eq!(
        r.commit(&mut p, 2, usize::MAX).unwrap(),
        1,
        "only key 9 is new"
    );
    // Growing past a span's room moves the table and keeps its contents.
    let before = r.get(2).unwrap().blocks.to_vec();
    let more: Vec<u128> = (10..110).collect();
    let reserved = r.reserved();
    assert!(r.grow(&mut p, 2, &more, 5, &mut ev).unwrap());
    assert!(
        r.reserved().1 > reserved.1,
        "the keys moved to a larger span"
    );
    let t = r.get(2).unwrap();
    assert_eq!(&t.blocks[..3], &before[..]);
    assert_eq!(&t.keys[..2], &[1, 9]);
    assert_eq!((t.blocks.len(), t.keys.len()), (5, 102));
    // A fork copies the parent exactly.
    r.fork(&mut p, 2, 4).unwrap();
    let (parent, child) = (r.get(2).unwrap(), r.get(4).unwrap());
    assert_eq!(parent, child);
    p.check_invariants().unwrap();
    r.free(&mut p, 2).unwrap();
    r.free(&mut p, 4).unwrap();
    assert!(r.is_empty());
    p.check_invariants().unwrap();
}

#[test]
fn running_requests_may_use_the_reserve_admission_may_not() {
    use kv_v2::Requests;
    let mut cfg = Config::new(8, 4);
    cfg.reserve = 3;
    let mut p = Pool::new(cfg).unwrap();
    let mut r = Requests::new();
    let mut ev = Vec::new();
    assert_eq!(r.admit(&mut p, 1, &[], 5, 0, &mut ev).unwrap(), None);
    assert_eq!(r.admit(&mut p, 1, &[], 4, 0, &mut ev).unwrap(), Some(0));
    assert_eq!(
        r.admit(&mut p, 2, &[], 1, 0, &mut ev).unwrap(),
        None,
        "only the reserve is left"
    );
    assert!(
        r.grow(&mut p, 1, &[], 7, &mut ev).unwrap(),
        "decode growth dips into the reserve"
    );
    assert!(!r.grow(&mut p, 1, &[], 8, &mut ev).unwrap());
    p.check_invariants().unwrap();
}

#[test]
fn logical_clock_rebases_without_changing_eviction_order() {
    for policy in [Policy::Lfu, Policy::Priority] {
        let mut cfg = Config::new(10, 4);
        cfg.policy = policy;
        let mut p = Pool::new(cfg).unwrap();
        let (t, _) = alloc(&mut p, 6);
        p.register(&t, &[1, 2, 3, 4, 5, 6], None, None).unwrap();
        p.set_priority(&t[..2], 3).unwrap();
        p.free(&t[..3]).unwrap();
        // Three blocks released before the clock nears its end, three after.
        p.debug_set_tick(u32::MAX - (1 << 30) - 2);
        p.free(&t[3..]).unwrap();
        let mut h = Vec::new();
        p.acquire(&[5], &mut h); // another stamp, past the threshold: rebase
        p.free(&h).unwrap();
        p.check_invariants().unwrap();
        let (_, ev) = alloc(&mut p, 9);
        let want: &[u128] = match policy {
            // LFU: every block was used once but 5 (acquired again): release order, 5 last.
            Policy::Lfu => &[1, 2, 3, 4, 6, 5],
            // Priority: prio 0 blocks by age (3, 4, 6, 5), then prio 3 (1, 2).
            _ => &[3, 4, 6, 5, 1, 2],
        };
        assert_eq!(ev, want, "{policy:?}");
    }
}

#[test]
fn a_stale_duplicate_does_not_hide_a_fresh_one_under_ttl() {
    let mut cfg = Config::new(6, 4);
    cfg.policy = Policy::Ttl { ttl: 10 };
    let mut p = Pool::new(cfg).unwrap();
    let (a, _) = alloc(&mut p, 1);
    p.register(&a, &[7], None, None).unwrap();
    p.free(&a).unwrap();
    p.set_time(50); // the cached block went stale, nobody called expire()
    assert_eq!(p.lookup(&[7], None), 0);
    let (b, _) = alloc(&mut p, 1);
    p.register(&b, &[7], None, None).unwrap(); // recomputed: a fresh duplicate
    p.free(&b).unwrap();
    let mut out = Vec::new();
    assert_eq!(p.lookup(&[7], Some(&mut out)), 1);
    assert_eq!(out, b);
    p.check_invariants().unwrap();
}

#[test]
fn frequency_counts_past_16_bits_and_saturates() {
    // The hot metadata keeps the count in 16 bits and spills larger ones to the cold array:
    // the persisted value and the LFU order must not notice.
    let mut p = pool(4);
    let (t, _) = alloc(&mut p, 1);
    p.register(&t, &[7], None, None).unwrap();
    let n = 70_000u32;
    p.touch(&vec![t[0]; n as usize]).unwrap();
    p.free(&vec![t[0]; n as usize + 1]).unwrap();
    let e = p.export_index();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].freq, n + 1, "allocation plus every touch");
    p.check_invariants().unwrap();

    for start in [65_533, 65_534, 65_535, u32::MAX - 1] {
        let mut cfg = Config::new(4, 4);
        cfg.policy = Policy::Lfu;
        let mut q = Pool::new(cfg).unwrap();
        let mut entries = p.export_index();
        entries[0].freq = start;
        q.import_index(&entries).unwrap();
        for i in 1..=3u32 {
            let mut hit = Vec::new();
            assert_eq!(q.acquire(&[7], &mut hit), 1);
            q.free(&hit).unwrap();
            assert_eq!(
                q.export_index()[0].freq,
                start.saturating_add(i),
                "from {start}"
            );
            q.check_invariants().unwrap();
        }
    }
}
