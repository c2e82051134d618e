//! Pure-Rust cost of the hot operations at a given pool size (no Python):
//! `cargo run --release -p kv_v2 --example microbench -- 100000`.
use std::time::Instant;

use kv_v2::{Config, Pool, Requests};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut p = Pool::new(Config::new(n, 16)).unwrap();
    let mut reqs = Requests::new();
    // Fill and churn so block ids in a table are scattered, like a long-running node.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let per = 300usize;
    let mut key = 1u128;
    let (mut t_admit, mut t_step, mut t_free, mut blocks) = (0u128, 0u128, 0u128, 0u64);
    let mut live: Vec<u64> = Vec::new();
    for rid in 0..20_000u64 {
        if live.len() >= 64 || p.allocatable(false) < per + 8 {
            let i = (next() as usize) % live.len();
            let r = live.swap_remove(i);
            let t = Instant::now();
            blocks += reqs.free(&mut p, r).unwrap() as u64;
            t_free += t.elapsed().as_nanos();
        }
        let keys: Vec<u128> = (0..per as u128).map(|i| key + i).collect();
        key += per as u128;
        let t = Instant::now();
        let got = reqs
            .admit(&mut p, rid, &keys, per, per, &mut Vec::new())
            .unwrap();
        t_admit += t.elapsed().as_nanos();
        if got.is_some() {
            let t = Instant::now();
            reqs.step(&mut p, rid, &[], per, &mut Vec::new()).unwrap();
            t_step += t.elapsed().as_nanos();
            live.push(rid);
        }
    }
    let b = blocks as f64;
    println!(
        "pool {n}: admit {:.1} ns/block, register {:.1} ns/block, free {:.1} ns/block",
        t_admit as f64 / (20_000.0 * per as f64),
        t_step as f64 / (20_000.0 * per as f64),
        t_free as f64 / b
    );
}
