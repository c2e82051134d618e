//! Property tests: any sequence of operations keeps every invariant, and reference counts
//! match a model that only knows which requests hold which blocks.

use kv_v2::{Config, DupPolicy, Policy, Pool};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Admit a request over a prefix of chain `chain` (`len` blocks), allocating the misses.
    Admit {
        chain: u8,
        len: u8,
    },
    /// Free request `r` (modulo the live count).
    Free {
        r: u8,
    },
    Fork {
        r: u8,
    },
    Cow {
        r: u8,
        slot: u8,
    },
    Pin {
        r: u8,
    },
    /// Pin whatever is cached of a chain, idle blocks included (a system prompt).
    PinChain {
        chain: u8,
    },
    Unpin {
        r: u8,
    },
    Evict {
        r: u8,
    },
    Prio {
        r: u8,
        p: u8,
    },
    Expire {
        dt: u8,
    },
    Reset,
    BadFree {
        id: u16,
    },
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, 1u8..8).prop_map(|(chain, len)| Op::Admit { chain, len }),
        5 => any::<u8>().prop_map(|r| Op::Free { r }),
        1 => any::<u8>().prop_map(|r| Op::Fork { r }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(r, slot)| Op::Cow { r, slot }),
        1 => any::<u8>().prop_map(|r| Op::Pin { r }),
        1 => (0u8..6).prop_map(|chain| Op::PinChain { chain }),
        1 => any::<u8>().prop_map(|r| Op::Unpin { r }),
        1 => any::<u8>().prop_map(|r| Op::Evict { r }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(r, p)| Op::Prio { r, p }),
        1 => (0u8..20).prop_map(|dt| Op::Expire { dt }),
        1 => Just(Op::Reset),
        1 => any::<u16>().prop_map(|id| Op::BadFree { id }),
        1 => Just(Op::Snapshot),
    ]
}

fn key(chain: u8, i: u8) -> u128 {
    (u128::from(chain) << 64) | u128::from(i) | 1 << 100
}

fn config() -> impl Strategy<Value = Config> {
    (
        3usize..24,
        prop_oneof![
            Just(Policy::Lru),
            Just(Policy::Lfu),
            Just(Policy::Priority),
            Just(Policy::Ttl { ttl: 15 })
        ],
        prop_oneof![Just(DupPolicy::KeepAll), Just(DupPolicy::Dedup)],
        0usize..3,
        0usize..4,
    )
        .prop_map(|(n, policy, dup, reserve, host)| {
            let mut c = Config::new(n, 4);
            c.policy = policy;
            c.dup = dup;
            c.reserve = reserve.min(n - 2);
            c.events = true;
            c.host_blocks = host;
            c
        })
}

fn refs_from_model(n: usize, tables: &[Vec<u32>]) -> Vec<u32> {
    let mut r = vec![0u32; n];
    for t in tables {
        for &b in t {
            r[b as usize] += 1;
        }
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_any_sequence(cfg in config(), ops in prop::collection::vec(op(), 1..80)) {
        let n = cfg.num_blocks;
        let mut p = Pool::new(cfg).unwrap();
        let mut tables: Vec<Vec<u32>> = Vec::new();
        let mut now = 0u32;
        let mut last_event = None;
        for op in ops {
            let pick = |r: u8, len: usize| (len > 0).then(|| r as usize % len);
            match op {
                Op::Admit { chain, len } => {
                    let keys: Vec<u128> = (0..len).map(|i| key(chain, i)).collect();
                    let mut table = Vec::new();
                    let hits = p.acquire(&keys, &mut table);
                    let mut new = Vec::new();
                    let mut ev = Vec::new();
                    if p.allocate(keys.len() - hits, false, &mut new, &mut ev).is_err() {
                        p.free_request(&table).unwrap();
                    } else {
                        let mut out = Vec::new();
                        let parent = hits.checked_sub(1).map(|h| keys[h]);
                        p.register(&new, &keys[hits..], parent, Some(&mut out)).unwrap();
                        table.extend(out);
                        // Hits must be exactly the blocks holding those keys.
                        for (i, &b) in table.iter().enumerate() {
                            prop_assert_eq!(p.block_key(b).unwrap(), Some(keys[i]));
                        }
                        tables.push(table);
                    }
                }
                Op::Free { r } => {
                    if let Some(i) = pick(r, tables.len()) {
                        let t = tables.swap_remove(i);
                        p.free_request(&t).unwrap();
                    }
                }
                Op::Fork { r } => {
                    if let Some(i) = pick(r, tables.len()) {
                        let child = p.fork(&tables[i]).unwrap();
                        tables.push(child);
                    }
                }
                Op::Cow { r, slot } => {
                    if let Some(i) = pick(r, tables.len()) {
                        if let Some(s) = pick(slot, tables[i].len()) {
                            if let Ok((nb, _)) = p.make_writable(tables[i][s], &mut Vec::new()) {
                                tables[i][s] = nb;
                                prop_assert!(p.is_writable(nb));
                            }
                        }
                    }
                }
                Op::Pin { r } => {
                    if let Some(i) = pick(r, tables.len()) {
                        p.pin(&tables[i]).unwrap();
                    }
                }
                Op::PinChain { chain } => {
                    let keys: Vec<u128> = (0..8).map(|i| key(chain, i)).collect();
                    let mut ids = Vec::new();
                    p.lookup(&keys, Some(&mut ids));
                    p.pin(&ids).unwrap();
                }
                Op::Unpin { r } => {
                    if let Some(i) = pick(r, tables.len()) {
                        p.unpin(&tables[i]).unwrap();
                    } else {
                        // Unpin everything so pinned-idle blocks come back.
                        let all: Vec<u32> = (1..n as u32).collect();
                        p.unpin(&all).unwrap();
                    }
                }
                Op::Evict { r } => {
                    if let Some(i) = pick(r, tables.len()) {
                        p.evict(&tables[i]).unwrap();
                    }
                }
                Op::Prio { r, p: prio } => {
                    if let Some(i) = pick(r, tables.len()) {
                        p.set_priority(&tables[i], prio).unwrap();
                    }
                }
                Op::Expire { dt } => {
                    now += u32::from(dt);
                    p.set_time(now);
                    p.expire();
                }
                Op::Reset => {
                    let busy = tables.iter().any(|t| !t.is_empty());
                    prop_assert_eq!(p.reset().is_err(), busy);
                }
                Op::BadFree { id } => {
                    let id = u32::from(id) % (n as u32 + 2);
                    let held = tables.iter().any(|t| t.contains(&id));
                    if !held {
                        let before = p.free_order();
                        prop_assert!(p.free(&[id]).is_err() || id == 0);
                        prop_assert_eq!(p.free_order(), before);
                    }
                }
                Op::Snapshot => {
                    let bytes = kv_v2::persist::to_bytes(&p).unwrap();
                    let mut q = Pool::new(p.config().clone()).unwrap();
                    kv_v2::persist::from_bytes(&mut q, &bytes).unwrap();
                    q.check_invariants().map_err(TestCaseError::fail)?;
                    prop_assert_eq!(q.stats().cached, p.stats().cached);
                }
            }
            if let Err(e) = p.check_invariants() {
                return Err(TestCaseError::fail(format!("after {op:?}: {e}")));
            }
            let want = refs_from_model(n, &tables);
            for id in 1..n as u32 {
                prop_assert_eq!(p.ref_count(id).unwrap(), want[id as usize], "block {}", id);
            }
            // Every block is in exactly one of free / used / pinned-idle.
            let s = p.stats();
            let free: std::collections::HashSet<u32> = p.free_order().into_iter().collect();
            prop_assert_eq!(free.len(), s.free);
            let idle_not_free = (1..n as u32)
                .filter(|&id| !free.contains(&id) && want[id as usize] == 0)
                .count();
            prop_assert!(idle_not_free <= s.pinned);
            prop_assert_eq!(s.free + s.used + idle_not_free, n - 1);
            for e in p.take_events() {
                if let Some(l) = last_event {
                    prop_assert!(e.id > l, "event ids are monotonic");
                }
                last_event = Some(e.id);
            }
        }
        for t in tables.drain(..) {
            p.free_request(&t).unwrap();
        }
        p.check_invariants().map_err(TestCaseError::fail)?;
    }
}

#[derive(Debug, Clone)]
enum ReqOp {
    Admit { chain: u8, len: u8, extra: u8 },
    Step { r: u8, grow: u8 },
    Free { r: u8 },
    Fork { r: u8 },
}

fn req_op() -> impl Strategy<Value = ReqOp> {
    prop_oneof![
        3 => (0u8..5, 0u8..8, 0u8..3).prop_map(|(chain, len, extra)| ReqOp::Admit { chain, len, extra }),
        4 => (any::<u8>(), 0u8..3).prop_map(|(r, grow)| ReqOp::Step { r, grow }),
        2 => any::<u8>().prop_map(|r| ReqOp::Free { r }),
        1 => any::<u8>().prop_map(|r| ReqOp::Fork { r }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The request layer keeps tables and ref counts consistent with the pool, and a table's
    /// cached prefix always holds the request's keys.
    #[test]
    fn request_tables_stay_consistent(cfg in config(), ops in prop::collection::vec(req_op(), 1..80)) {
        use kv_v2::Requests;
        let n = cfg.num_blocks;
        let mut p = Pool::new(cfg).unwrap();
        let mut reqs = Requests::new();
        let mut live: Vec<(u64, u8)> = Vec::new(); // (rid, chain)
        let mut next_rid = 0u64;
        let mut ev = Vec::new();
        for op in ops {
            let pick = |r: u8, len: usize| (len > 0).then(|| r as usize % len);
            match op {
                ReqOp::Admit { chain, len, extra } => {
                    let keys: Vec<u128> = (0..len).map(|i| key(chain, i)).collect();
                    let total = usize::from(len) + usize::from(extra);
                    let rid = next_rid;
                    next_rid += 1;
                    if let Some(h) = reqs.admit(&mut p, rid, &keys, total, usize::from(len), &mut ev).unwrap() {
                        prop_assert!(h <= usize::from(len));
                        live.push((rid, chain));
                    }
                }
                ReqOp::Step { r, grow } => {
                    if let Some(i) = pick(r, live.len()) {
                        let (rid, chain) = live[i];
                        let t = reqs.get(rid).unwrap();
                        let have = t.keys.len() as u8;
                        let new: Vec<u128> = (have..have + grow).map(|j| key(chain, j)).collect();
                        let total = t.blocks.len() + usize::from(grow);
                        reqs.step(&mut p, rid, &new, total, &mut ev).unwrap();
                    }
                }
                ReqOp::Free { r } => {
                    if let Some(i) = pick(r, live.len()) {
                        let (rid, _) = live.swap_remove(i);
                        reqs.free(&mut p, rid).unwrap();
                    }
                }
                ReqOp::Fork { r } => {
                    if let Some(i) = pick(r, live.len()) {
                        let child = next_rid;
                        next_rid += 1;
                        reqs.fork(&mut p, live[i].0, child).unwrap();
                        live.push((child, live[i].1));
                    }
                }
            }
            p.check_invariants().map_err(TestCaseError::fail)?;
            let mut want = vec![0u32; n];
            for &(rid, _) in &live {
                let t = reqs.get(rid).unwrap();
                for (j, &b) in t.blocks.iter().enumerate() {
                    want[b as usize] += 1;
                    if j < t.cached {
                        prop_assert_eq!(p.block_key(b).unwrap(), Some(t.keys[j]));
                    }
                }
            }
            for id in 1..n as u32 {
                prop_assert_eq!(p.ref_count(id).unwrap(), want[id as usize], "block {}", id);
            }
            prop_assert_eq!(reqs.len(), live.len());
        }
        for (rid, _) in live {
            reqs.free(&mut p, rid).unwrap();
        }
        prop_assert_eq!(p.stats().used, 0);
        p.check_invariants().map_err(TestCaseError::fail)?;
    }
}
