#!/usr/bin/env python3
"""KV_v2 (from Python, through the bindings) beside vLLM's own BlockPool and SGLang's own
RadixCache, same trace, same run.

    python benchmarks/kv_v2.py            # pools of 16k and 100k blocks
    python benchmarks/kv_v2.py --quick    # a small pool, for a smoke run
    python benchmarks/kv_v2.py --no-sglang

The SGLang column needs ``benchmarks/fetch_sglang.py`` (about 5 GB: torch and its CUDA
libraries, in .bench-cache/sglang-venv; SGLang's radix cache files); the benchmark runs it
itself unless --no-sglang is given, and skips the column, saying why, when it cannot.

The trace: multi-turn agent sessions whose system prompts (1-6k tokens) are shared by a Zipf
law, about 64 requests active, a working set 2-4x the pool. Both sides are driven the way
vLLM's scheduler drives its pool: longest hit (up to num_tokens - 1), touch, allocate,
cache full blocks as they fill, free in reverse. Each call is timed on its own; block rates
are blocks handled per second of thread CPU time spent in that kind of call (the clock's own
cost subtracted), so other processes on a shared machine do not distort them; p50/p99 per
call come from a second replay timed with the wall clock.

SGLang 0.5.23's RadixCache runs on CPU with the real torch (2.14.1, the version it pins),
page size 16, LRU, driven as SGLang's scheduler drives it: ``match_prefix`` on the prompt
minus its last token, ``lock`` of the matched node, ``evict`` when its own paged allocator is
short, ``alloc`` of whole pages, the request's row of the request-to-token table written;
``checkpoint`` (insert of the prompt's full pages, duplicates freed, row re-pointed) after
prefill and again at finish; decode steps only allocate pages; at release the tail past the
inserted pages is freed and the lock dropped. Its keys are token ids, so it hashes nothing.
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

import fetch_sglang
import sglang_shim
import vllm_shim

from pyagent_compile.runtime.kv import BlockHasher, KvOutOfBlocksError, KvPool

BS = 16
SGLANG_NOTE = (
    "SGLang: its own RadixCache and PagedTokenToKVPoolAllocator, page = block = 16 tokens. "
    "Its scheduler inserts (checkpoint) after prefill and at finish, not per decode step: its "
    "step row is decode-step page allocations plus those inserts (register row: checkpoint; "
    "allocate row: decode allocations). Its lookup is match_prefix (it refreshes LRU times and "
    "may split a node). Its free is release after the final checkpoint (tail pages freed, "
    "lock dropped). Its admission decisions differ from vLLM's and KV_v2's (prompts cached at "
    "prefill, not block by block; LRU over tree leaves), hence its own hit rate. It hashes "
    "nothing (keys are token ids): requests/s is the same with and without hashing. "
    "Metadata not measured (its indices are torch tensors, outside tracemalloc).\n"
    "** evict: RadixCache.evict calls on their own; they are also inside its admit and "
    "allocate figures, as the other sides' evictions are inside their allocations."
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


def median_replay(replays: list[Result]) -> Result:
    """One result from several CPU-time replays of the same trace: each kind of call takes
    its timer from the replay whose rate for it is the median, so one replay slowed by the
    shared machine moves no figure. The replays make the same decisions (checked)."""
    first = replays[0]
    if any(r.hits != first.hits for r in replays):
        raise SystemExit(f"{first.name}: replays of the same trace made different decisions")
    out = Result(
        first.name,
        {},
        first.admitted,
        first.hits,
        first.query_blocks,
        first.hit_blocks,
        first.meta_bytes,
    )
    for k in first.timers:
        ranked = sorted((r.timers[k] for r in replays), key=Timer.rate)
        out.timers[k] = ranked[len(ranked) // 2]
    return out


def merged(replays: list[Result]) -> Result:
    """A side's wall-clock replay (first) combined with the median of its CPU-time ones."""
    return combine(replays[0], median_replay(replays[1:]))


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


# ---- SGLang side -----------------------------------------------------------------------------


class ReqToToken:
    """SGLang's ``ReqToTokenPool`` as ``RadixCache.checkpoint`` uses it: ``req_to_token``
    (one int32 row of KV indices per running request, as SGLang allocates it) and
    ``write``. SGLang's own class lives in memory_pool.py with the GPU KV buffers."""

    def __init__(self, torch: Any, rows: int, width: int) -> None:
        self.req_to_token = torch.zeros((rows, width), dtype=torch.int32)

    def write(self, indices: Any, values: Any) -> None:
        self.req_to_token[indices] = values


def run_sglang(s: Any, trace: Trace, num_blocks: int) -> Result:
    """SGLang's RadixCache and PagedTokenToKVPoolAllocator (page = block = 16 tokens), with
    the same number of usable blocks as the other sides (its allocator, like vLLM's pool,
    keeps one page back). Blocks are pages; rates are pages per second.

    - lookup: ``match_prefix`` (it also refreshes LRU times and may split a node: SGLang has
      no side-effect-free lookup); admit: that + ``lock`` + ``evict`` when short + ``alloc``
      + the row write (the scheduler's ``prepare_for_extend``).
    - step: ``alloc`` of the pages a decode step grows into (the allocate row), and
      ``checkpoint`` after prefill and at finish (the register row: the insert of the
      request's full pages, duplicates freed, row re-pointed onto the tree's pages).
    - free: ``release_kv_cache`` after its checkpoint: the row's pages past the tree's freed
      with ``free_segment`` (what ``free_kv_row`` does for one full-attention pool), the
      lock dropped. Counted as the request's pages, like the other sides' tables.
    - evict: ``RadixCache.evict`` calls on their own (they also count inside admit and
      allocate, as vLLM's and KV_v2's evictions count inside their allocations).
    """
    from array import array
    from types import SimpleNamespace

    torch = s.torch
    torch.set_num_threads(1)  # the other sides run on one thread; thread time counts one
    alloc = s.PagedTokenToKVPoolAllocator(
        size=(num_blocks - 1) * BS,
        page_size=BS,
        dtype=torch.float16,
        device="cpu",
        kvcache=None,
        need_sort=False,  # SGLang's default outside prefill/decode disaggregation
    )
    longest, n_of = 0, {}
    for op in trace.ops:
        if op[0] == "admit":
            n_of[op[1]] = op[3]
        elif op[0] == "grow":
            n_of[op[1]] += op[2]
            longest = max(longest, n_of[op[1]])
    rtt = ReqToToken(torch, 128, -(-max(longest, max(n_of.values())) // BS) * BS)
    cache = s.RadixCache(
        s.CacheInitParams(
            disable=False,
            req_to_token_pool=rtt,
            token_to_kv_pool_allocator=alloc,
            page_size=BS,
            eviction_policy="lru",
        )
    )
    Match, Key, Evict = s.MatchPrefixParams, s.RadixKey, s.EvictParams
    res = Result("SGLang", timers("lookup", "admit", "step", "allocate", "register", "free", "evict"))
    T = res.timers
    slots = list(range(127, -1, -1))
    reqs: dict[int, Any] = {}
    held: dict[int, int] = {}  # pages in the request's row
    ntok: dict[int, int] = {}
    ctx_of: dict[int, list[int]] = {}

    def make_room(tokens: int) -> None:
        """SGLang's evict_from_tree_cache: evict what the allocator is short of."""
        short = tokens - alloc.available_size()
        if short > 0:
            t0 = ns()
            got = cache.evict(Evict(num_tokens=short))
            T["evict"].add(ns() - t0, got.num_tokens_evicted // BS)

    def checkpoint(req: Any, up_to: int) -> None:
        before = req.kv.cache_protected_len
        t0 = ns()
        cache.checkpoint(req, up_to=up_to)
        dt = ns() - t0
        done = (req.kv.cache_protected_len - before) // BS
        T["register"].add(dt, done)
        T["step"].add(dt, done)

    for op in trace.ops:
        kind, r = op[0], op[1]
        if kind == "admit":
            ctx, n = op[2], op[3]
            ids = array("q", ctx[:n])
            max_hit = (n - 1) // BS
            total = -(-n // BS)
            t0 = ns()
            m = cache.match_prefix(Match(key=Key(ids, limit=n - 1)))
            t_lookup = ns() - t0
            hits = m.device_prefix_len // BS
            T["lookup"].add(t_lookup, min(hits + 1, max_hit))
            t1 = ns()
            lock = cache.lock(m.last_device_node)
            prefix = cache.path_device_indices(m.last_device_node)
            make_room((total - hits) * BS)
            new = alloc.alloc((total - hits) * BS)
            if new is None:
                cache.unlock(lock)
                res.hits.append(-1)
                continue
            slot = slots.pop()
            row = rtt.req_to_token[slot]
            row[: hits * BS] = prefix
            row[hits * BS : total * BS] = new
            T["admit"].add(t_lookup + ns() - t1, total)
            res.query_blocks += max_hit
            res.hit_blocks += hits
            res.hits.append(hits)
            req = SimpleNamespace(
                full_untruncated_fill_ids=ids,
                origin_input_ids=range(n),  # checkpoint reads only its length
                extra_key=None,
                cache_salt=None,
                priority=None,
                lock=lock,
                last_node=m.last_device_node,
                kv=SimpleNamespace(
                    req_pool_idx=slot,
                    swa_evict_floor=0,
                    cache_inserted_len=0,
                    cache_protected_len=hits * BS,
                ),
            )
            reqs[r], held[r], ntok[r], ctx_of[r] = req, total, n, ctx
            res.admitted += 1
            checkpoint(req, n)  # after prefill, as the scheduler's checkpoint_kv_cache
        elif r not in reqs:
            continue
        elif kind == "grow":
            req = reqs[r]
            old, n = ntok[r], ntok[r] + op[2]
            req.full_untruncated_fill_ids.extend(ctx_of[r][old:n])
            ntok[r] = n
            need = -(-n // BS) - held[r]
            if need <= 0:
                continue
            t0 = ns()
            make_room(need * BS)
            new = alloc.alloc(need * BS)
            if new is None:
                continue  # as vLLM's side: no pages this step, retried at the next
            rtt.req_to_token[req.kv.req_pool_idx, held[r] * BS : (held[r] + need) * BS] = new
            dt = ns() - t0
            T["allocate"].add(dt, need)
            T["step"].add(dt, need)
            held[r] += need
        else:
            req = reqs.pop(r)
            pages = held.pop(r)
            checkpoint(req, min(ntok[r], pages * BS))
            t0 = ns()
            start = req.kv.cache_protected_len
            tail = rtt.req_to_token[req.kv.req_pool_idx, start : pages * BS]
            if tail.numel():
                alloc.free_segment(tail, start_pos=start)
            cache.unlock(req.lock)
            T["free"].add(ns() - t0, pages)
            slots.append(req.kv.req_pool_idx)
    # Every page is back: free or held by the tree alone, none twice, nothing locked.
    pages_free = alloc.get_all_free_pages()
    assert len(torch.unique(pages_free)) == len(pages_free)
    assert cache.protected_size() == 0
    assert alloc.available_size() + cache.evictable_size() == (num_blocks - 1) * BS
    assert cache.total_size() == cache.evictable_size()
    return res


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
    sg: Result | None,
) -> None:
    print(
        f"\n== pool {num_blocks:,} blocks x {BS} tokens | {trace.requests:,} requests, 64 active, "
        f"working set {trace.working_set:,} blocks ({trace.working_set / num_blocks:.1f}x pool)"
    )
    print(f"{'metric':34} {'KV_v2':>12} {'vLLM':>12} {'ratio':>8} {'SGLang':>12} {'ratio':>8}")

    def cell(ours: float, theirs: float | None, higher_better: bool) -> str:
        if not theirs:
            return f"{'-':>12} {'-':>8}"
        ratio = ours / theirs if higher_better else theirs / ours
        return f"{fmt(theirs):>12} {ratio:>7.1f}x"

    def row(
        label: str,
        ours: float,
        theirs: float | None,
        sgl: float | None = None,
        higher_better: bool = True,
    ) -> None:
        print(f"{label:34} {fmt(ours):>12} {cell(ours, theirs, higher_better)} {cell(ours, sgl, higher_better)}")

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
        a = ours.timers[k]
        b = vl.timers[k] if vl else None
        c = sg.timers.get(k) if sg else None
        row(f"{label} blocks/s", a.rate(), b.rate() if b else None, c.rate() if c else None)
        for label_q, q in (("  p50 us/call", 0.5), ("  p99 us/call", 0.99)):
            row(
                label_q,
                a.pct(q),
                b.pct(q) if b else None,
                c.pct(q) if c else None,
                higher_better=False,
            )
    a, b = kvb.timers["step"], (vl.timers["step"] if vl else None)
    row("step batched* blocks/s", a.rate(), b.rate() if b else None)
    # Per-call latencies of a batch and of one request's step do not compare: no ratio.
    row("  p50 us/call (per batch)", a.pct(0.5), None)
    row("  p99 us/call (per batch)", a.pct(0.99), None)
    if sg:
        e = sg.timers["evict"]
        for label, x in (
            ("evict (SGLang only)** blocks/s", e.rate()),
            ("  p50 us/call", e.pct(0.5)),
            ("  p99 us/call", e.pct(0.99)),
        ):
            print(f"{label:34} {'-':>12} {'-':>12} {'-':>8} {fmt(x):>12} {'-':>8}")
    # SGLang keys its tree by token ids: it hashes nothing, so "with hashing" is its total.
    sg_rate = sg.req_rate(False) if sg else None
    row("requests/s, no hashing", kv.req_rate(False), vl.req_rate(False) if vl else None, sg_rate)
    row("requests/s, with hashing", kv.req_rate(True), vl.req_rate(True) if vl else None, sg_rate)
    row(
        "requests/s, list API, no hashing",
        kvf.req_rate(False),
        vl.req_rate(False) if vl else None,
        sg_rate,
    )
    kv_hr = kv.hit_blocks / max(1, kv.query_blocks)
    vl_hr = vl.hit_blocks / max(1, vl.query_blocks) if vl else float("nan")
    sg_hr = f"{sg.hit_blocks / max(1, sg.query_blocks):.4f}" if sg else "-"
    print(f"{'hit rate (blocks)':34} {kv_hr:>12.4f} {vl_hr:>12.4f} {'':>8} {sg_hr:>12}")
    if sg:
        vl_n = f"{vl.admitted:,}" if vl else "-"
        print(f"{'requests admitted':34} {kv.admitted:>12,} {vl_n:>12} {'':>8} {sg.admitted:>12,}")
    meta_ratio = vmeta / kv.meta_bytes if vmeta else 0
    print(f"{'metadata bytes/block':34} {kv.meta_bytes:>12.1f} {vmeta:>12.1f} {meta_ratio:>7.1f}x {'-':>12} {'-':>8}")
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
    ap.add_argument("--no-sglang", action="store_true", help="skip the SGLang column")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="CPU-time replays per side and pool size; rates are their median (default 3)",
    )
    args = ap.parse_args()
    os.environ.pop("PYTHONHASHSEED", None)
    why = ""
    try:
        v: Any = vllm_shim.load()
    except vllm_shim.VllmUnavailable as e:
        v, why = None, str(e)
    sg_mod: Any = None
    if args.no_sglang:
        why_sg = "--no-sglang"
    else:
        if not fetch_sglang.ready():
            fetch_sglang.main()  # about 5 GB on first use; says so and returns when it cannot
        try:
            sg_mod, why_sg = sglang_shim.load(), ""
        except sglang_shim.SglangUnavailable as e:
            why_sg = str(e)
    sizes = [(2048, 70)] if args.quick else [(16_384, 500), (100_000, 3000)]
    print(
        f"KV_v2 benchmark: block size {BS}, seed {args.seed}, vLLM {vllm_shim.VLLM_VERSION} BlockPool "
        f"(CPU, pure Python), SGLang {sglang_shim.SGLANG_VERSION} RadixCache (CPU, torch "
        f"{sglang_shim.TORCH_VERSION}, page size {BS}, LRU), python {sys.version.split()[0]}\n"
        f"Each side replays the trace once on the wall clock (p50/p99 per call) and {max(1, args.repeat)} "
        "times on thread CPU time (rates, blocks/s and requests/s: the median replay for each "
        "kind of call). Ratios are KV_v2's figure over the other's."
    )
    for num_blocks, sessions in sizes:
        trace = make_trace(args.seed, sessions)
        gc.collect()
        # runs[side] = [wall-clock replay, CPU-time replays...]; the sides alternate within
        # each round, so a slow spell of the machine falls on all of them.
        runs: dict[str, list[Result]] = {"kv": [], "kvl": [], "kvb": [], "vl": [], "sg": []}
        for clock in [Clock.wall] + [Clock.cpu] * max(1, args.repeat):
            clock()
            runs["kv"].append(run_kv_requests(trace, num_blocks))
            runs["kvl"].append(run_kv(trace, num_blocks, fused=False))
            runs["kvb"].append(run_kv_requests(trace, num_blocks, batched=True))
            if v:
                runs["vl"].append(run_vllm(v, trace, num_blocks))
            if sg_mod:
                runs["sg"].append(run_sglang(sg_mod, trace, num_blocks))
        Clock.wall()

        kv, kvf, kvb = merged(runs["kv"]), merged(runs["kvl"]), merged(runs["kvb"])
        vl = merged(runs["vl"]) if v else None
        sg = merged(runs["sg"]) if sg_mod else None
        vmeta = vllm_meta_bytes(v, num_blocks) if v else 0.0
        report(num_blocks, trace, kv, kvf, kvb, vl, vmeta, why, sg)
    print("\n" + (SGLANG_NOTE if sg_mod else f"SGLang: not run ({why_sg})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
