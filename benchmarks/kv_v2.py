#!/usr/bin/env python3
"""KV_v2 (from Python, through the bindings) beside vLLM's own BlockPool, same trace, same run.

    python benchmarks/kv_v2.py            # pools of 16k and 100k blocks
    python benchmarks/kv_v2.py --quick    # a small pool, for a smoke run

The trace: multi-turn agent sessions whose system prompts (1-6k tokens) are shared by a Zipf
law, about 64 requests active, a working set 2-4x the pool. Both sides are driven the way
vLLM's scheduler drives its pool: longest hit (up to num_tokens - 1), touch, allocate,
cache full blocks as they fill, free in reverse. Each call is timed on its own; block rates
are blocks handled per second of thread CPU time spent in that kind of call (the clock's own
cost subtracted), so other processes on a shared machine do not distort them; p50/p99 per
call come from a second replay timed with the wall clock.

SGLang's RadixCache is not run: it keeps its values as torch tensors (torch.cat in
match_prefix, tensor slicing on split), and torch is not installed here.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vllm_shim

from pyagent_compile.kv import BlockHasher, KvOutOfBlocksError, KvPool

BS = 16
SGLANG_NOTE = (
    "SGLang RadixCache: not run. It stores KV indices as torch tensors (torch.cat in "
    "match_prefix, tensor slicing when splitting nodes) and torch is not installed; "
    "stubbing torch would measure the stub, not SGLang."
)


# ---- the trace -------------------------------------------------------------------------------


@dataclass
class Trace:
    """Ops: ("admit", rid, ctx, n) / ("grow", rid, k) / ("finish", rid). A request's tokens
    are ``ctx[:n]`` growing by ``k`` per grow: each session owns one append-only list."""

    ops: list[tuple[Any, ...]]
    requests: int
    working_set: int


def make_trace(seed: int, num_sessions: int, active: int = 64) -> Trace:
    rng = random.Random(seed)
    vocab = 32000
    prompts = [[rng.randrange(vocab) for _ in range(rng.randint(1000, 6000))] for _ in range(32)]
    weights = [1.0 / (i + 1) ** 1.1 for i in range(len(prompts))]
    ctxs = [list(rng.choices(prompts, weights)[0]) for _ in range(num_sessions)]
    turns = [rng.randint(1, 6) for _ in range(num_sessions)]
    waiting = list(range(num_sessions))
    rng.shuffle(waiting)
    running: dict[int, list[int]] = {}  # rid -> [session, output_left]
    ops: list[tuple[Any, ...]] = []
    rid = 0
    while waiting or running:
        if waiting and len(running) < active:
            s = waiting.pop()
            ctx = ctxs[s]
            ctx.extend(rng.randrange(vocab) for _ in range(rng.randint(30, 400)))
            running[rid] = [s, rng.randint(20, 300)]
            ops.append(("admit", rid, ctx, len(ctx)))
            rid += 1
            continue
        r = rng.choice(list(running))
        s, left = running[r]
        if left > 0:
            k = min(left, rng.randint(1, 64))
            ctxs[s].extend(rng.randrange(vocab) for _ in range(k))
            running[r][1] -= k
            ops.append(("grow", r, k))
            continue
        ops.append(("finish", r))
        del running[r]
        turns[s] -= 1
        if turns[s] > 0:
            waiting.insert(rng.randrange(len(waiting) + 1), s)
    # Working set: distinct full-block prefixes. Sessions are append-only, so a session's
    # blocks are its final context's blocks; shared prompts are counted once.
    prompt_ids = {id(p): p for p in prompts}
    del prompt_ids
    seen: set[bytes] = set()
    hasher = BlockHasher(BS)
    for ctx in ctxs:
        keys, _ = hasher.hash_keys(ctx)
        seen.update(keys[i : i + 16] for i in range(0, len(keys), 16))
    return Trace(ops, rid, len(seen))


# ---- timing ----------------------------------------------------------------------------------


@dataclass
class Timer:
    calls: list[int] = field(default_factory=list)  # ns per call
    blocks: int = 0
    wall_calls: list[int] = field(default_factory=list)  # wall-clock ns per call

    def add(self, dt: int, blocks: int) -> None:
        self.calls.append(max(0, dt - Clock.overhead))
        self.blocks += blocks

    @property
    def total_s(self) -> float:
        return sum(self.calls) / 1e9

    def rate(self) -> float:
        return self.blocks / self.total_s if self.calls and self.total_s else 0.0

    def pct(self, q: float) -> float:
        calls = self.wall_calls or self.calls
        if not calls:
            return 0.0
        s = sorted(calls)
        return s[min(len(s) - 1, int(q * len(s)))] / 1e3


@dataclass
class Result:
    name: str
    timers: dict[str, Timer]
    admitted: int = 0
    hits: list[int] = field(default_factory=list)
    query_blocks: int = 0
    hit_blocks: int = 0
    meta_bytes: float = 0.0

    def req_rate(self, with_hashing: bool) -> float:
        keys = ["admit", "step", "free"] + (["hash"] if with_hashing else [])
        t = sum(self.timers[k].total_s for k in keys if k in self.timers)
        return self.admitted / t if t else 0.0


def combine(latency: Result, cpu: Result) -> Result:
    """Rates from the CPU-time replay (immune to preemption by other processes on this
    shared machine), p50/p99 from the wall-clock replay. Both replays make the same
    decisions."""
    out = Result(
        cpu.name,
        {},
        cpu.admitted,
        cpu.hits,
        cpu.query_blocks,
        cpu.hit_blocks,
        cpu.meta_bytes,
    )
    for k, t in cpu.timers.items():
        out.timers[k] = Timer(list(t.calls), t.blocks, list(latency.timers[k].calls))
    return out


class Clock:
    """The clock the replays read. ``cpu()`` switches to this thread's CPU time with the
    clock's own cost (a system call, measured) subtracted from every interval."""

    now: Callable[[], int] = time.perf_counter_ns
    overhead = 0

    @classmethod
    def wall(cls) -> None:
        cls.now, cls.overhead = time.perf_counter_ns, 0

    @classmethod
    def cpu(cls) -> None:
        tt = time.thread_time_ns
        gaps = []
        for _ in range(20000):
            a = tt()
            gaps.append(tt() - a)
        cls.now, cls.overhead = tt, int(statistics.median(gaps))


def ns() -> int:
    return Clock.now()


def timers(*names: str) -> dict[str, Timer]:
    return {n: Timer() for n in names}


# ---- vLLM side -------------------------------------------------------------------------------


def run_vllm(v: Any, trace: Trace, num_blocks: int) -> Result:
    from types import SimpleNamespace

    pool = v.BlockPool(num_blocks, True, BS)
    hbt, sha = v.hash_block_tokens, v.sha256_cbor
    res = Result(
        "vLLM",
        timers("hash", "lookup", "admit", "step", "allocate", "register", "free"),
    )
    T = res.timers
    reqs: dict[int, Any] = {}
    tables: dict[int, list[Any]] = {}
    cached: dict[int, int] = {}
    ntok: dict[int, int] = {}
    ctx_of: dict[int, list[int]] = {}

    def hash_to(req: Any, ctx: list[int], n: int) -> None:
        hashes = req.block_hashes
        start = len(hashes)
        parent = hashes[-1] if hashes else None
        t0 = ns()
        for i in range(start, n // BS):
            parent = hbt(sha, parent, ctx[i * BS : (i + 1) * BS], None)
            hashes.append(parent)
        T["hash"].add(ns() - t0, n // BS - start)

    def cache(r: int) -> None:
        """One scheduler step: allocate what the request grew into, cache full blocks."""
        n = ntok[r]
        full = n // BS
        table = tables[r]
        need = -(-n // BS) - len(table)
        dt = 0
        if need > 0:
            if need > pool.get_num_free_blocks():
                return
            t0 = ns()
            table.extend(pool.get_new_blocks(need))
            dt = ns() - t0
            T["allocate"].add(dt, need)
        done = 0
        if full > cached[r]:
            t0 = ns()
            pool.cache_full_blocks(reqs[r], table, cached[r], full, BS, 0)
            dr = ns() - t0
            T["register"].add(dr, full - cached[r])
            dt += dr
            done = full - cached[r]
            cached[r] = full
        if need > 0 or done:
            T["step"].add(dt, max(need, 0) + done)

    for op in trace.ops:
        kind, r = op[0], op[1]
        if kind == "admit":
            ctx, n = op[2], op[3]
            req = SimpleNamespace(block_hashes=[], all_token_ids=ctx)
            hash_to(req, ctx, n)
            max_hit = (n - 1) // BS
            hs = req.block_hashes
            t0 = ns()
            hits: list[Any] = []
            for h in hs[:max_hit]:
                got = pool.get_cached_block(h, [0])
                if got is None:
                    break
                hits.append(got[0])
            t_lookup = ns() - t0
            T["lookup"].add(t_lookup, min(len(hits) + 1, max_hit))
            # Admission = this lookup + touch + get_new_blocks (vLLM's allocate_slots path).
            t1 = ns()
            num_new = -(-n // BS) - len(hits)
            idle = sum(1 for b in hits if b.ref_cnt == 0)
            if num_new + idle > pool.get_num_free_blocks():
                res.hits.append(-1)
                continue
            pool.touch(hits)
            new = pool.get_new_blocks(num_new)
            T["admit"].add(t_lookup + ns() - t1, num_new + len(hits))
            res.query_blocks += max_hit
            res.hit_blocks += len(hits)
            res.hits.append(len(hits))
            reqs[r], tables[r], cached[r], ntok[r], ctx_of[r] = (
                req,
                hits + new,
                len(hits),
                n,
                ctx,
            )
            res.admitted += 1
        elif r not in tables:
            continue
        elif kind == "grow":
            ntok[r] += op[2]
            hash_to(reqs[r], ctx_of[r], ntok[r])
            cache(r)
        else:
            cache(r)
            table = tables.pop(r)
            t0 = ns()
            pool.free_blocks(reversed(table))
            T["free"].add(ns() - t0, len(table))
            del reqs[r]
    return res


def vllm_meta_bytes(v: Any, n: int) -> float:
    """Bytes vLLM's pool holds per block once every block is cached: block objects, the free
    queue, the hash map and the per-block hash keys it stores (tracemalloc)."""
    from types import SimpleNamespace

    hashes = [os.urandom(32) for _ in range(n - 1)]
    req = SimpleNamespace(block_hashes=hashes, all_token_ids=[])
    gc.collect()
    tracemalloc.start()
    pool = v.BlockPool(n, True, BS)
    blocks = pool.get_new_blocks(n - 1)
    pool.cache_full_blocks(req, blocks, 0, n - 1, BS, 0)
    pool.free_blocks(reversed(blocks))
    del blocks
    cur, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return cur / n


# ---- KV_v2 side ------------------------------------------------------------------------------


def run_kv(trace: Trace, num_blocks: int, fused: bool) -> Result:
    pool = KvPool(num_blocks, BS)
    hasher = BlockHasher(BS)
    names = ("hash", "lookup", "admit", "step", "allocate", "register", "free")
    res = Result("KV_v2" + (" fused" if fused else ""), timers(*names))
    T = res.timers
    tables: dict[int, list[int]] = {}
    keys: dict[int, bytes] = {}
    parent: dict[int, bytes | None] = {}
    cached: dict[int, int] = {}
    ntok: dict[int, int] = {}
    ctx_of: dict[int, list[int]] = {}

    def hash_to(r: int, n: int) -> None:
        k = keys[r]
        done = len(k) // 16
        if n // BS <= done:
            return
        ctx = ctx_of[r]
        t0 = ns()
        fresh, last = hasher.hash_keys(ctx[done * BS : (n // BS) * BS], parent[r], done * BS)
        T["hash"].add(ns() - t0, n // BS - done)
        keys[r] = k + fresh
        parent[r] = last

    def cache(r: int) -> None:
        n = ntok[r]
        full = n // BS
        table = tables[r]
        need = -(-n // BS) - len(table)
        dt = 0
        if need > 0:
            t0 = ns()
            try:
                # Ids only, as get_new_blocks returns (allocate() adds the evicted keys).
                ids = pool.allocate_ids(need)
            except KvOutOfBlocksError:
                return
            dt = ns() - t0
            T["allocate"].add(dt, need)
            table.extend(ids)
        c = cached[r]
        done = 0
        if full > c:
            k = keys[r]
            par = k[16 * (c - 1) : 16 * c] if c else None
            ids_new, keys_new = table[c:full], k[16 * c : 16 * full]
            t0 = ns()
            table[c:full] = pool.register(ids_new, keys_new, par)
            dr = ns() - t0
            T["register"].add(dr, full - c)
            dt += dr
            done = full - c
            cached[r] = full
        if need > 0 or done:
            T["step"].add(dt, max(need, 0) + done)

    for op in trace.ops:
        kind, r = op[0], op[1]
        if kind == "admit":
            ctx, n = op[2], op[3]
            ctx_of[r], keys[r], parent[r] = ctx, b"", None
            hash_to(r, n)
            k = keys[r]
            max_hit = (n - 1) // BS
            total = -(-n // BS)
            if fused:
                t0 = ns()
                got = pool.admit(k[: 16 * max_hit], total)
                # One call does lookup, touch and allocate.
                if got is None:
                    res.hits.append(-1)
                    continue
                table, hits, _ = got
                T["admit"].add(ns() - t0, total)
            else:
                t0 = ns()
                hit_ids = pool.lookup_blocks(k[: 16 * max_hit])
                T["lookup"].add(ns() - t0, min(len(hit_ids) + 1, max_hit))
                hits = len(hit_ids)
                # Same capacity rule as vLLM: idle hits leave the free list too.
                t0 = ns()
                got = pool.admit(k[: 16 * hits], total)
                if got is None:
                    res.hits.append(-1)
                    continue
                table = got[0]
                T["admit"].add(ns() - t0, total)
            res.query_blocks += max_hit
            res.hit_blocks += hits
            res.hits.append(hits)
            tables[r], cached[r], ntok[r] = table, hits, n
            res.admitted += 1
        elif r not in tables:
            continue
        elif kind == "grow":
            ntok[r] += op[2]
            hash_to(r, ntok[r])
            cache(r)
        else:
            cache(r)
            table = tables.pop(r)
            t0 = ns()
            pool.free_request(table)
            T["free"].add(ns() - t0, len(table))
    res.meta_bytes = pool.stats().metadata_bytes_per_block
    pool.check_invariants()
    return res


def run_kv_requests(trace: Trace, num_blocks: int, batched: bool = False) -> Result:
    """KV_v2 through its request-level API: block tables stay in Rust, each call carries a
    request id and key blobs. ``lookup`` is the side-effect-free router estimate, timed on
    its own; admission (lookup + touch + allocate) is one call.

    ``batched``: consecutive decode steps of different requests (the trace's runs of "grow"
    ops between two admissions or finishes) go through one ``req_step_many`` call, in the
    same order, as a scheduler stepping all running requests per iteration would. The
    decisions are the same; only the number of calls changes. vLLM's scheduler calls its
    KVCacheManager once per request per step, so this row is not like-for-like."""
    pool = KvPool(num_blocks, BS)
    hasher = BlockHasher(BS)
    res = Result("KV_v2", timers("hash", "lookup", "admit", "step", "free"))
    pending: list[tuple[int, int, bytes]] = []
    T = res.timers
    nkeys: dict[int, int] = {}
    parent: dict[int, bytes | None] = {}
    ntok: dict[int, int] = {}
    ctx_of: dict[int, list[int]] = {}
    nblocks: dict[int, int] = {}

    def hash_new(r: int, n: int) -> bytes:
        done = nkeys[r]
        if n // BS <= done:
            return b""
        ctx = ctx_of[r]
        t0 = ns()
        fresh, last = hasher.hash_keys(ctx[done * BS : (n // BS) * BS], parent[r], done * BS)
        T["hash"].add(ns() - t0, n // BS - done)
        nkeys[r] = n // BS
        parent[r] = last
        return fresh

    def step(r: int, fresh: bytes) -> None:
        n = ntok[r]
        total = -(-n // BS)
        t0 = ns()
        done = pool.req_step(r, total, fresh)
        dt = ns() - t0
        if done is None:
            return
        grew = total - nblocks[r]
        nblocks[r] = total
        if grew or done:
            T["step"].add(dt, grew + done)

    def flush() -> None:
        if not pending:
            return
        t0 = ns()
        got = pool.req_step_many(pending)
        dt = ns() - t0
        blocks = 0
        for (r, total, _), done in zip(pending, got, strict=True):
            if done is None:
                continue
            blocks += total - nblocks[r] + done
            nblocks[r] = total
        if blocks:
            T["step"].add(dt, blocks)
        pending.clear()

    for op in trace.ops:
        kind, r = op[0], op[1]
        if batched and kind != "grow":
            flush()
        if kind == "admit":
            ctx, n = op[2], op[3]
            ctx_of[r], nkeys[r], parent[r], ntok[r] = ctx, 0, None, n
            keys = hash_new(r, n)
            max_hit = (n - 1) // BS
            total = -(-n // BS)
            t0 = ns()
            est = pool.lookup(keys[: 16 * max_hit])
            T["lookup"].add(ns() - t0, min(est + 1, max_hit))
            t0 = ns()
            hits = pool.req_admit(r, keys, total, max_hit)
            if hits is None:
                res.hits.append(-1)
                continue
            T["admit"].add(ns() - t0, total)
            res.query_blocks += max_hit
            res.hit_blocks += hits
            res.hits.append(hits)
            nblocks[r] = total
            res.admitted += 1
        elif r not in nblocks:
            continue
        elif kind == "grow":
            ntok[r] += op[2]
            if batched:
                fresh = hash_new(r, ntok[r])
                pending.append((r, -(-ntok[r] // BS), fresh))
            else:
                step(r, hash_new(r, ntok[r]))
        else:
            if batched:
                pending.append((r, -(-ntok[r] // BS), b""))
                flush()
            else:
                step(r, b"")
            t0 = ns()
            freed = pool.req_free(r)
            T["free"].add(ns() - t0, freed)
            del nblocks[r]
    res.meta_bytes = pool.stats().metadata_bytes_per_block
    pool.check_invariants()
    return res


# ---- report ----------------------------------------------------------------------------------


def fmt(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:,.1f}k"
    return f"{x:,.2f}"


def report(
    num_blocks: int,
    trace: Trace,
    kv: Result,
    kvf: Result,
    kvb: Result,
    vl: Result | None,
    vmeta: float,
    why: str,
) -> None:
    print(
        f"\n== pool {num_blocks:,} blocks x {BS} tokens | {trace.requests:,} requests, 64 active, "
        f"working set {trace.working_set:,} blocks ({trace.working_set / num_blocks:.1f}x pool)"
    )
    print(f"{'metric':34} {'KV_v2':>12} {'vLLM':>12} {'ratio':>8}")

    def row(label: str, ours: float, theirs: float | None, higher_better: bool = True) -> None:
        if theirs:
            ratio = ours / theirs if higher_better else theirs / ours
            print(f"{label:34} {fmt(ours):>12} {fmt(theirs):>12} {ratio:>7.1f}x")
        else:
            print(f"{label:34} {fmt(ours):>12} {'-':>12} {'-':>8}")

    labels = {
        "lookup": "lookup (no side effects)",
        "admit": "admit (lookup+touch+allocate)",
        "step": "step (allocate+register)",
        "allocate": "  allocate (list API)",
        "register": "  register (list API)",
        "free": "free (reverse order)",
        "hash": "hash (xxh3 vs sha256_cbor)",
    }
    for k, label in labels.items():
        # The request API fuses a step into one call; the split comes from the list API run.
        ours = kvf if k in ("allocate", "register") else kv
        a, b = ours.timers[k], (vl.timers[k] if vl else None)
        row(f"{label} blocks/s", a.rate(), b.rate() if b else None)
        row("  p50 us/call", a.pct(0.5), b.pct(0.5) if b else None, higher_better=False)
        row(
            "  p99 us/call",
            a.pct(0.99),
            b.pct(0.99) if b else None,
            higher_better=False,
        )
    a, b = kvb.timers["step"], (vl.timers["step"] if vl else None)
    row("step batched* blocks/s", a.rate(), b.rate() if b else None)
    # Per-call latencies of a batch and of one request's step do not compare: no ratio.
    row("  p50 us/call (per batch)", a.pct(0.5), None)
    row("  p99 us/call (per batch)", a.pct(0.99), None)
    row("requests/s, no hashing", kv.req_rate(False), vl.req_rate(False) if vl else None)
    row("requests/s, with hashing", kv.req_rate(True), vl.req_rate(True) if vl else None)
    row(
        "requests/s, list API, no hashing",
        kvf.req_rate(False),
        vl.req_rate(False) if vl else None,
    )
    kv_hr = kv.hit_blocks / max(1, kv.query_blocks)
    vl_hr = vl.hit_blocks / max(1, vl.query_blocks) if vl else float("nan")
    print(f"{'hit rate (blocks)':34} {kv_hr:>12.4f} {vl_hr:>12.4f}")
    meta_ratio = vmeta / kv.meta_bytes if vmeta else 0
    print(f"{'metadata bytes/block':34} {kv.meta_bytes:>12.1f} {vmeta:>12.1f} {meta_ratio:>7.1f}x")
    if vl:
        same = vl.hits == kv.hits == kvf.hits == kvb.hits
        print(f"identical admission decisions and hits vs vLLM (LRU): {'yes' if same else 'NO'}")
    else:
        print(f"vLLM: not run ({why})")
    print(
        "* step batched: one req_step_many call per run of consecutive decode steps (mean "
        f"{kvb.timers['step'].blocks / max(1, len(kvb.timers['step'].calls)):.1f} blocks/call) "
        "against vLLM's one call per request per step: not like-for-like. The step row above "
        "is like-for-like: one req_step per request per step, as vLLM's scheduler calls its "
        "KVCacheManager."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small pool (smoke run)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.environ.pop("PYTHONHASHSEED", None)
    why = ""
    try:
        v: Any = vllm_shim.load()
    except vllm_shim.VllmUnavailable as e:
        v, why = None, str(e)
    sizes = [(2048, 70)] if args.quick else [(16_384, 500), (100_000, 3000)]
    print(
        f"KV_v2 benchmark: block size {BS}, seed {args.seed}, vLLM {vllm_shim.VLLM_VERSION} BlockPool "
        f"(CPU, pure Python), python {sys.version.split()[0]}\n"
        "Each side replays the trace twice: rates (blocks/s, requests/s) from thread CPU "
        "time, p50/p99 per call from wall time."
    )
    for num_blocks, sessions in sizes:
        trace = make_trace(args.seed, sessions)
        gc.collect()
        runs: dict[str, list[Result]] = {"kv": [], "kvl": [], "kvb": [], "vl": []}
        for clock in (Clock.wall, Clock.cpu):
            clock()
            runs["kv"].append(run_kv_requests(trace, num_blocks))
            runs["kvl"].append(run_kv(trace, num_blocks, fused=False))
            runs["kvb"].append(run_kv_requests(trace, num_blocks, batched=True))
            if v:
                runs["vl"].append(run_vllm(v, trace, num_blocks))
        Clock.wall()
        kv, kvf, kvb = combine(*runs["kv"]), combine(*runs["kvl"]), combine(*runs["kvb"])
        vl = combine(*runs["vl"]) if v else None
        vmeta = vllm_meta_bytes(v, num_blocks) if v else 0.0
        report(num_blocks, trace, kv, kvf, kvb, vl, vmeta, why)
    print("\n" + SGLANG_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
