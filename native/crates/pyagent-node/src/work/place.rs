//! Placement: which live worker runs a queued task. A pure function of the committed state, so
//! every replica makes the same decision when it applies the same entry, and it can be tested
//! (and replayed) without a cluster.

use std::collections::BTreeMap;

use super::{Resources, WorkState, Worker};

/// What a worker has left, with what already runs on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub free: Resources,
    pub running: u32,
}

/// Every live worker's room at `now`. Tasks that only wait for their sub-tasks take none.
pub fn rooms(work: &WorkState, now: u64) -> BTreeMap<u64, Room> {
    let mut rooms: BTreeMap<u64, Room> = work
        .workers
        .iter()
        .filter(|(_, w)| w.lease_until_ms > now)
        .map(|(id, w)| {
            let room = Room {
                free: w.capacity,
                running: 0,
            };
            (*id, room)
        })
        .collect();
    for t in work.running().filter(|t| !t.waits_on_sub_tasks()) {
        if let Some(room) = rooms.get_mut(&t.owner) {
            room.free = room.free.minus(&t.resources);
            room.running += 1;
        }
    }
    rooms
}

/// The worker for a task needing `need` of core `core`: among live workers whose pool runs the
/// core, under their task bound and with room, the one running fewest tasks, then with the most
/// free memory, then the lowest id. `Err` says why none fits, for the queued task's reason.
pub fn place(
    core: &str,
    need: &Resources,
    workers: &BTreeMap<u64, Worker>,
    rooms: &BTreeMap<u64, Room>,
) -> Result<u64, String> {
    let runs_core: Vec<(&u64, &Worker)> = workers
        .iter()
        .filter(|(_, w)| w.cores.iter().any(|c| c == core))
        .collect();
    if runs_core.is_empty() {
        return Err(format!("no node runs core {core:?}"));
    }
    if !runs_core.iter().any(|(_, w)| need.fits_in(&w.capacity)) {
        return Err(format!(
            "no pool running core {core:?} is large enough: it needs {need}"
        ));
    }
    let live: Vec<(u64, &Worker, Room)> = runs_core
        .iter()
        .filter_map(|(id, w)| rooms.get(id).map(|r| (**id, *w, *r)))
        .collect();
    if live.is_empty() {
        return Err(format!("every node that runs core {core:?} is down"));
    }
    live.iter()
        .filter(|(_, w, r)| r.running < w.max_tasks && need.fits_in(&r.free))
        .min_by_key(|(id, _, r)| (r.running, u64::MAX - r.free.memory_bytes, *id))
        .map(|(id, _, _)| *id)
        .ok_or_else(|| {
            format!(
                "waiting for room: every node that runs core {core:?} is full (it needs {need})"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn worker(cores: &[&str], cpu: u64, mem: u64, max_tasks: u32) -> Worker {
        Worker {
            pool: "p".into(),
            cores: cores.iter().map(|s| s.to_string()).collect(),
            capacity: Resources {
                cpu_millis: cpu,
                memory_bytes: mem,
                gpu_memory_bytes: 0,
            },
            max_tasks,
            isolation: "namespaces".into(),
            lease_until_ms: 1_000,
        }
    }

    fn need(cpu: u64, mem: u64) -> Resources {
        Resources {
            cpu_millis: cpu,
            memory_bytes: mem,
            gpu_memory_bytes: 0,
        }
    }

    fn rooms_of(workers: &BTreeMap<u64, Worker>) -> BTreeMap<u64, Room> {
        workers
            .iter()
            .map(|(id, w)| {
                (
                    *id,
                    Room {
                        free: w.capacity,
                        running: 0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn reasons_name_what_is_missing() {
        let mut ws = BTreeMap::new();
        ws.insert(1, worker(&["coder"], 1000, 1 << 30, 2));
        let rooms = rooms_of(&ws);
        assert!(place("security", &need(0, 0), &ws, &rooms)
            .unwrap_err()
            .contains("no node runs core"));
        assert!(place("coder", &need(2000, 0), &ws, &rooms)
            .unwrap_err()
            .contains("large enough"));
        assert!(place("coder", &need(100, 0), &ws, &BTreeMap::new())
            .unwrap_err()
            .contains("down"));
        let full = [(
            1,
            Room {
                free: need(900, 1 << 30),
                running: 2,
            },
        )]
        .into();
        assert!(place("coder", &need(100, 0), &ws, &full)
            .unwrap_err()
            .contains("waiting for room"));
        assert_eq!(place("coder", &need(100, 0), &ws, &rooms), Ok(1));
    }

    proptest! {
        /// Whatever the workers and their load, a placement is a live worker that runs the core,
        /// is under its bound and has room; no placement means no such worker exists.
        #[test]
        fn placement_is_sound_and_complete(
            specs in proptest::collection::vec((0u8..3, 0u64..4000, 0u64..8, 1u32..4, 0u32..4, 0u64..4000), 0..8),
            cpu in 0u64..3000,
        ) {
            let cores = ["a", "b", "c"];
            let mut ws = BTreeMap::new();
            let mut rooms = BTreeMap::new();
            for (i, (core, cap, mem, max, running, used)) in specs.iter().enumerate() {
                let id = i as u64 + 1;
                ws.insert(id, worker(&[cores[*core as usize]], *cap, *mem, *max));
                rooms.insert(id, Room { free: need(cap.saturating_sub(*used), *mem), running: *running });
            }
            let n = need(cpu, 0);
            let fits = |id: &u64| {
                let (w, r) = (&ws[id], &rooms[id]);
                w.cores.iter().any(|c| c == "a") && r.running < w.max_tasks && n.fits_in(&r.free)
            };
            match place("a", &n, &ws, &rooms) {
                Ok(id) => prop_assert!(fits(&id)),
                Err(_) => prop_assert!(!ws.keys().any(fits)),
            }
            // The same inputs give the same decision.
            prop_assert_eq!(place("a", &n, &ws, &rooms), place("a", &n, &ws, &rooms));
        }
    }
}
