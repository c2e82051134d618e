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
cost subtracted), so preemption by other processes on a shared machine does not enter them;
p50 per call comes from a replay timed with the wall clock. Every side replays once per round,
the side going first rotating; figures are medians of the rounds with [min-max], ratios are
taken round by round.

What each row compares (the table prints the legend, ``LEGEND`` below): rows L are like for
like, KV_v2 called call for call as vLLM's scheduler calls its BlockPool, Python block lists
both ways, the same hash algorithm (sha256_cbor); rows R use KV_v2's request interface (block
tables in Rust), an interface vLLM lacks, against vLLM's like-for-like figure; rows D compare
each side's default hash (different algorithms). Memory is measured as the resident set growth
of a fresh process per side at a 1M-block pool (``--rss-blocks``), beside KV_v2's estimate.
Each run is recorded in benchmarks/results/kv-<UTC>.json with the load average.

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
import ctypes
import datetime as dt
import gc
import json
import os
import random
import statistics
import subprocess
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


def run_kv(trace: Trace, num_blocks: int, hash_mode: str = "sha256_cbor") -> Result:
    """KV_v2 through its block API, call for call as vLLM's scheduler calls its BlockPool, with
    Python lists of block ids crossing the boundary both ways:

    - lookup: ``lookup_blocks(keys)`` -> the cached prefix's ids (vLLM: ``get_cached_block``
      per block until the first miss, its KVCacheManager's loop);
    - admit: that + ``admit(hit_keys, total)`` (touch and allocate, all or nothing; vLLM:
      ``get_num_free_blocks`` + ``touch`` + ``get_new_blocks``);
    - step: ``allocate_ids(n)`` + ``register(ids, keys, parent)`` (vLLM: ``get_new_blocks``
      + ``cache_full_blocks``);
    - free: ``free_request(table)`` (vLLM: ``free_blocks(reversed(table))``);
    - hash: ``BlockHasher.hash_keys`` in ``hash_mode``, one call per request's new blocks
      (vLLM: ``hash_block_tokens`` per block)."""
    pool = KvPool(num_blocks, BS, hash_mode=hash_mode)
    hasher = BlockHasher(BS, mode=hash_mode)
    names = ("hash", "lookup", "admit", "step", "allocate", "register", "free")
    res = Result("KV_v2 list", timers(*names))
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
            t0 = ns()
            hit_ids = pool.lookup_blocks(k[: 16 * max_hit])
            t_lookup = ns() - t0
            T["lookup"].add(t_lookup, min(len(hit_ids) + 1, max_hit))
            hits = len(hit_ids)
            # Same capacity rule as vLLM: idle hits leave the free list too. Admission is
            # the lookup and this call, as vLLM's is its lookup loop and three calls.
            t0 = ns()
            got = pool.admit(k[: 16 * hits], total)
            if got is None:
                res.hits.append(-1)
                continue
            table = got[0]
            T["admit"].add(t_lookup + ns() - t0, total)
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


# ---- measured memory ---------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set now, after returning freed heap memory to the system (glibc's
    ``malloc_trim``), so what is counted is what is live."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


RSS_CHUNK = 256  # blocks per call: a long prompt's table, as a scheduler's calls carry


def rss_child(side: str, n: int) -> dict[str, float]:
    """In a fresh process: the growth of the resident set from before the pool is made to when
    every one of its ``n`` blocks but the null block is cached and free (the state in which a
    pool holds the most metadata), per block. The keys (vLLM: 32-byte block hashes, as its
    requests hold them; KV_v2: one blob of 16-byte keys) are made before the first reading:
    they are the requests', not the pool's; the pool's own copies are counted. Both sides are
    filled as a scheduler fills them, ``RSS_CHUNK`` blocks per call (all tables held, then all
    freed), so neither keeps a transient buffer sized for the whole pool."""
    chunks = [(i, min(i + RSS_CHUNK, n - 1)) for i in range(0, n - 1, RSS_CHUNK)]
    if side == "vllm":
        from types import SimpleNamespace

        v = vllm_shim.load()
        hashes = [os.urandom(32) for _ in range(n - 1)]
        reqs = [SimpleNamespace(block_hashes=hashes[a:b], all_token_ids=[]) for a, b in chunks]
        before = rss_bytes()
        pool = v.BlockPool(n, True, BS)
        tables = [pool.get_new_blocks(b - a) for a, b in chunks]
        for req, table in zip(reqs, tables, strict=True):
            pool.cache_full_blocks(req, table, 0, len(table), BS, 0)
        for table in reversed(tables):
            pool.free_blocks(reversed(table))
        del tables
        after = rss_bytes()
        estimate = 0.0
    else:
        keys = os.urandom(16 * (n - 1))
        before = rss_bytes()
        kv = KvPool(n, BS)
        ids = [kv.allocate_ids(b - a) for a, b in chunks]
        for (a, b), table in zip(chunks, ids, strict=True):
            kv.register(table, keys[16 * a : 16 * b], None)
        for table in reversed(ids):
            kv.free_request(table)
        del ids
        after = rss_bytes()
        estimate = kv.stats().metadata_bytes_per_block
        kv.check_invariants()
    return {"before": before, "after": after, "bytes_per_block": (after - before) / n, "estimate": estimate}


def measure_rss(n: int, runs: int, with_vllm: bool) -> dict[str, list[dict[str, float]]]:
    """``runs`` rounds of one fresh process per side, the side going first alternating."""
    sides = ["kv", "vllm"] if with_vllm else ["kv"]
    out: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for i in range(runs):
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
            done = subprocess.run(
                [sys.executable, __file__, "--rss-child", side, str(n)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"RSS child ({side}, {n} blocks) failed:\n{done.stderr}")
            out[side].append(json.loads(done.stdout))
    return out


# ---- the rounds --------------------------------------------------------------------------------


def replay_rounds(trace: Trace, num_blocks: int, v: Any, sg_mod: Any, repeat: int) -> dict[str, list[Result]]:
    """runs[side] = [wall-clock replay, CPU-time replays...]. Within each round every side
    replays once; the side going first rotates from round to round, so a slow spell of the
    shared machine falls on all of them."""
    sides: dict[str, Callable[[], Result]] = {
        "kv": lambda: run_kv_requests(trace, num_blocks),
        "kvl": lambda: run_kv(trace, num_blocks),
        "kvb": lambda: run_kv_requests(trace, num_blocks, batched=True),
        "vl": lambda: run_vllm(v, trace, num_blocks),
    }
    if sg_mod:
        sides["sg"] = lambda: run_sglang(sg_mod, trace, num_blocks)
    runs: dict[str, list[Result]] = {name: [] for name in sides}
    names = list(sides)
    for i, clock in enumerate([Clock.wall] + [Clock.cpu] * repeat):
        clock()
        for name in names[i % len(names) :] + names[: i % len(names)]:
            runs[name].append(sides[name]())
    Clock.wall()
    return runs


# ---- report ----------------------------------------------------------------------------------


def fmt(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:,.1f}k"
    return f"{x:,.2f}"


@dataclass
class Spread:
    """Per-replay figures of one row: their median and range."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0

    def cell(self, unit: str = "") -> str:
        if not self.samples:
            return "-"
        lo, hi = min(self.samples), max(self.samples)
        if unit == "x":
            return f"{self.median:.1f}x [{lo:.1f}-{hi:.1f}]"
        return f"{fmt(self.median)} [{fmt(lo)}-{fmt(hi)}]"


@dataclass
class Row:
    """One line of a table: our side's and the anchor's per-replay figures (same rounds, so the
    ratio is taken round by round), and p50 per call from the wall-clock replays."""

    key: str
    label: str
    section: str  # "like-for-like", "interface vLLM lacks", "different algorithms"
    ours: Spread
    theirs: Spread
    third: Spread | None = None  # SGLang, where it has the operation
    p50: tuple[float, float] | None = None

    def ratio(self, other: Spread | None = None) -> Spread:
        b = other if other is not None else self.theirs
        pairs = zip(self.ours.samples, b.samples, strict=False)
        return Spread([a / t for a, t in pairs if t])


def rates(results: list[Result], op: str) -> Spread:
    return Spread([r.timers[op].rate() for r in results if op in r.timers])


def req_rates(results: list[Result], hashing: bool) -> Spread:
    return Spread([r.req_rate(hashing) for r in results])


# Row keys, labels and what each side calls; the table prints the key, the legend says the calls.
LEGEND = {
    "L1": "lookup: longest cached prefix as a block list, no side effects. KV_v2 lookup_blocks(keys) "
    "-> list of ids, 1 call; vLLM get_cached_block(hash) per block until the first miss (its "
    "KVCacheManager's loop).",
    "L2": "admit: lookup + touch the hits + allocate the rest. KV_v2 lookup_blocks + admit(hit_keys, n) "
    "(touch and allocate, all or nothing), 2 calls, table returned as a list; vLLM the L1 loop + "
    "get_num_free_blocks + touch + get_new_blocks.",
    "L3": "step: a request's scheduler step, allocate + register its newly full blocks. KV_v2 "
    "allocate_ids(n) + register(ids, keys, parent); vLLM get_new_blocks(n) + cache_full_blocks(...). "
    "L3a/L3b: the two calls on their own.",
    "L4": "free: a finished request's table, tail first. KV_v2 free_request(table: list); vLLM "
    "free_blocks(reversed(table)).",
    "L5": "hash: chained block hashes with the same algorithm, sha256 of CBOR, byte for byte equal. "
    "KV_v2 BlockHasher('sha256_cbor').hash_keys(new tokens), 1 call per request per step; vLLM "
    "hash_block_tokens(sha256_cbor, ...) per block, as its Request's block hasher.",
    "L6": "requests/s through L2-L4 (L5 included in the second line): admitted requests per second of "
    "time spent in the pool.",
    "R1": "KV_v2 lookup(keys) -> a count only (a router's estimate); against vLLM's L1.",
    "R2": "KV_v2 req_admit(rid, keys, n): 1 call, the table stays in Rust; against vLLM's L2.",
    "R3": "KV_v2 req_step(rid, n, new_keys): 1 call per request per step; against vLLM's L3.",
    "R3*": "KV_v2 req_step_many: one call for each run of consecutive decode steps of different "
    "requests (a scheduler stepping every running request at once); against vLLM's L3, which "
    "has no batched form.",
    "R4": "KV_v2 req_free(rid): the table is in Rust; against vLLM's L4.",
    "R6": "requests/s through R2-R4; against vLLM's L6 (no hashing).",
    "D1": "hash with each side's default: KV_v2 xxh3 (BlockHasher default) against vLLM sha256_cbor "
    "(its default). Different algorithms: the gain is mostly xxh3's.",
    "D2": "requests/s through R2-R4 with KV_v2's xxh3 hashing, against vLLM's L6 with sha256_cbor.",
}


def build_rows(runs: dict[str, list[Result]]) -> list[Row]:
    kvl, kvr, kvb, vl = runs["kvl"][1:], runs["kv"][1:], runs["kvb"][1:], runs["vl"][1:]
    sg = runs["sg"][1:] if runs.get("sg") else []
    walls = {k: v[0] for k, v in runs.items() if v}

    def p50(side: str, op: str) -> tuple[float, float] | None:
        a, b = walls.get(side), walls.get("vl")
        if not a or not b or op not in a.timers:
            return None
        return a.timers[op].pct(0.5), b.timers[op].pct(0.5)

    def third(op: str) -> Spread | None:
        return rates(sg, op) if sg and op in sg[0].timers else None

    like = "like-for-like"
    rows = [
        Row("L1", "lookup", like, rates(kvl, "lookup"), rates(vl, "lookup"), third("lookup"), p50("kvl", "lookup")),
        Row("L2", "admit", like, rates(kvl, "admit"), rates(vl, "admit"), third("admit"), p50("kvl", "admit")),
        Row("L3", "step", like, rates(kvl, "step"), rates(vl, "step"), third("step"), p50("kvl", "step")),
        Row(
            "L3a",
            "  allocate",
            like,
            rates(kvl, "allocate"),
            rates(vl, "allocate"),
            third("allocate"),
            p50("kvl", "allocate"),
        ),
        Row(
            "L3b",
            "  register",
            like,
            rates(kvl, "register"),
            rates(vl, "register"),
            third("register"),
            p50("kvl", "register"),
        ),
        Row("L4", "free", like, rates(kvl, "free"), rates(vl, "free"), third("free"), p50("kvl", "free")),
        Row("L5", "hash, sha256_cbor both", like, rates(kvl, "hash"), rates(vl, "hash"), None, p50("kvl", "hash")),
        Row("L6", "requests/s, no hashing", like, req_rates(kvl, False), req_rates(vl, False), None),
        Row("L6", "requests/s, sha256_cbor both", like, req_rates(kvl, True), req_rates(vl, True), None),
    ]
    lacks = "interface vLLM lacks"
    rows += [
        Row("R1", "lookup, count only", lacks, rates(kvr, "lookup"), rates(vl, "lookup"), None, p50("kv", "lookup")),
        Row("R2", "admit, table in Rust", lacks, rates(kvr, "admit"), rates(vl, "admit"), None, p50("kv", "admit")),
        Row("R3", "step, table in Rust", lacks, rates(kvr, "step"), rates(vl, "step"), None, p50("kv", "step")),
        Row("R3*", "step, batched", lacks, rates(kvb, "step"), rates(vl, "step"), None),
        Row("R4", "free, table in Rust", lacks, rates(kvr, "free"), rates(vl, "free"), None, p50("kv", "free")),
        Row("R6", "requests/s, no hashing", lacks, req_rates(kvr, False), req_rates(vl, False), None),
    ]
    diff = "different algorithms"
    rows += [
        Row("D1", "hash, xxh3 vs sha256_cbor", diff, rates(kvr, "hash"), rates(vl, "hash"), None, p50("kv", "hash")),
        Row("D2", "requests/s, xxh3 vs sha256", diff, req_rates(kvr, True), req_rates(vl, True), None),
    ]
    return rows


SECTION_TITLES = {
    "like-for-like": "like for like: block lists cross the boundary on both sides, call for call as vLLM's "
    "scheduler calls its BlockPool; same hash algorithm",
    "interface vLLM lacks": "KV_v2's request interface (block tables stay in Rust): an interface vLLM lacks; "
    "vLLM's figure is its like-for-like one",
    "different algorithms": "each side's default hash: different algorithms",
}


def print_table(rows: list[Row], sglang: bool) -> None:
    head = f"  {'row':4} {'blocks/s (requests/s on L6/R6/D2)':34} {'KV_v2':>24} {'vLLM':>24} {'KV_v2/vLLM':>17}"
    head += f" {'p50 us/call KV_v2|vLLM':>23}"
    if sglang:
        head += f" {'SGLang':>24} {'KV_v2/SGLang':>17}"
    section = ""
    for row in rows:
        if row.section != section:
            section = row.section
            print(f"\n{SECTION_TITLES[section]}\n{head}")
        p50 = f"{row.p50[0]:.2f} | {row.p50[1]:.2f}" if row.p50 else "-"
        line = (
            f"  {row.key:4} {row.label:34} {row.ours.cell():>24} {row.theirs.cell():>24} "
            f"{row.ratio().cell('x'):>17} {p50:>23}"
        )
        if sglang:
            if row.third is not None:
                line += f" {row.third.cell():>24} {row.ratio(row.third).cell('x'):>17}"
            else:
                line += f" {'-':>24} {'-':>17}"
        print(line)


def spread_json(x: Spread) -> dict[str, Any]:
    return {
        "median": x.median,
        "min": min(x.samples, default=0.0),
        "max": max(x.samples, default=0.0),
        "samples": x.samples,
    }


def report(num_blocks: int, trace: Trace, runs: dict[str, list[Result]], vmeta: float) -> dict[str, Any]:
    print(
        f"\n== pool {num_blocks:,} blocks x {BS} tokens | {trace.requests:,} requests, 64 active, "
        f"working set {trace.working_set:,} blocks ({trace.working_set / num_blocks:.1f}x pool)"
    )
    rows = build_rows(runs)
    sglang = bool(runs.get("sg"))
    print_table(rows, sglang)
    kvl, kv, vl = runs["kvl"][1], runs["kv"][1], runs["vl"][1]
    hr = {name: r.hit_blocks / max(1, r.query_blocks) for name, r in (("KV_v2", kv), ("vLLM", vl))}
    same = all(r.hits == vl.hits for side in ("kv", "kvl", "kvb") for r in runs[side])
    print(
        f"\nhit rate (blocks): KV_v2 {hr['KV_v2']:.4f}, vLLM {hr['vLLM']:.4f}"
        + (f", SGLang {runs['sg'][1].hit_blocks / max(1, runs['sg'][1].query_blocks):.4f}" if sglang else "")
        + f"; identical admission decisions and hits, every KV_v2 replay vs vLLM (LRU): {'yes' if same else 'NO'}"
    )
    print(
        f"metadata, estimate at this size: KV_v2 {kvl.meta_bytes:.1f} B/block (its own count of its arrays), "
        f"vLLM {vmeta:.1f} B/block (tracemalloc of its Python objects), {vmeta / kvl.meta_bytes:.1f}x; "
        "measured process growth: below"
    )
    return {
        "num_blocks": num_blocks,
        "requests": trace.requests,
        "working_set_blocks": trace.working_set,
        "identical_decisions": same,
        "hit_rate": hr,
        "metadata_estimate_bytes_per_block": {"KV_v2": kvl.meta_bytes, "vLLM_tracemalloc": vmeta},
        "rows": [
            {
                "key": r.key,
                "label": r.label.strip(),
                "section": r.section,
                "KV_v2": spread_json(r.ours),
                "vLLM": spread_json(r.theirs),
                "ratio": spread_json(r.ratio()),
                **({"SGLang": spread_json(r.third), "ratio_SGLang": spread_json(r.ratio(r.third))} if r.third else {}),
                **({"p50_us_per_call": {"KV_v2": r.p50[0], "vLLM": r.p50[1]}} if r.p50 else {}),
            }
            for r in rows
        ],
    }


def verdicts(sizes: list[dict[str, Any]], mem: dict[str, Any] | None) -> list[str]:
    """The README's targets, against the like-for-like rows and the measured memory."""
    out = []
    for size in sizes:
        ops = [r for r in size["rows"] if r["key"] in ("L1", "L2", "L3", "L4")]
        parts = ", ".join(f"{r['label']} {r['ratio']['median']:.1f}x" for r in ops)
        worst = min(ops, key=lambda r: r["ratio"]["median"])
        ok = worst["ratio"]["median"] >= CALL_TARGET
        miss = "" if ok else f" -> MISSES: {worst['label']} at {worst['ratio']['median'] / CALL_TARGET:.0%} of it"
        out.append(f"target >= {CALL_TARGET:.0f}x vLLM call for call, {size['num_blocks']:,} blocks: {parts}{miss}")
    if mem:
        ratio = mem["ratio"]["median"]
        verdict = "meets" if ratio >= MEMORY_TARGET else f"MISSES ({ratio / MEMORY_TARGET:.0%} of it)"
        out.append(f"target metadata >= {MEMORY_TARGET:.0f}x smaller, measured: {ratio:.1f}x -> {verdict}")
    return out


CALL_TARGET = 20.0
MEMORY_TARGET = 4.0
RESULTS = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    """HEAD, with "-dirty" when the working tree differs from it (the figures are then not HEAD's)."""
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, cwd=root)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=False, cwd=root
    )
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def record(document: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"kv-{document['utc']}.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small pool (smoke run)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-sglang", action="store_true", help="skip the SGLang column")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="CPU-time replays per side and pool size; rates are their median [min-max] (default 3)",
    )
    ap.add_argument("--rss-blocks", type=int, default=1_000_000, help="pool size for the measured memory (default 1M)")
    ap.add_argument("--rss-runs", type=int, default=3, help="fresh processes per side for it (default 3)")
    ap.add_argument("--rss-child", nargs=2, metavar=("SIDE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child[0], int(args.rss_child[1]))))
        return 0
    os.environ.pop("PYTHONHASHSEED", None)
    try:
        v: Any = vllm_shim.load()
    except vllm_shim.VllmUnavailable as e:
        raise SystemExit(f"vLLM: {e}") from e
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
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    load_start = os.getloadavg()
    sizes = [(2048, 70)] if args.quick else [(16_384, 500), (100_000, 3000)]
    rss_n = 100_000 if args.quick else args.rss_blocks
    repeat = max(1, args.repeat)
    print(
        f"KV_v2 benchmark: block size {BS}, seed {args.seed}, vLLM {vllm_shim.VLLM_VERSION} BlockPool "
        f"(CPU, pure Python), SGLang {sglang_shim.SGLANG_VERSION} RadixCache (CPU, torch "
        f"{sglang_shim.TORCH_VERSION}, page size {BS}, LRU), python {sys.version.split()[0]}; "
        f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} on {os.cpu_count()} CPUs\n"
        f"Each side replays the trace once on the wall clock (p50 per call) and {repeat} times on thread "
        "CPU time (rates); within each round every side runs once, the side going first rotating from "
        "round to round. Figures: median [min-max] of the CPU-time replays; ratios: KV_v2's figure over "
        "the other's, taken round by round, median [min-max]."
    )
    document: dict[str, Any] = {
        "benchmark": "kv_v2",
        "utc": stamp,
        "commit": git_commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_avg_start": load_start},
        "repeat": repeat,
        "seed": args.seed,
        "vllm": vllm_shim.VLLM_VERSION,
        "sglang": sglang_shim.SGLANG_VERSION if sg_mod else f"not run ({why_sg})",
        "legend": LEGEND,
        "sizes": [],
    }
    for num_blocks, sessions in sizes:
        trace = make_trace(args.seed, sessions)
        gc.collect()
        runs = replay_rounds(trace, num_blocks, v, sg_mod, repeat)
        vmeta = vllm_meta_bytes(v, num_blocks)
        document["sizes"].append(report(num_blocks, trace, runs, vmeta))
    print(
        f"\nmetadata per block, measured: resident set growth of a fresh process from before the pool is made "
        f"to every block of {rss_n:,} cached and free, {args.rss_runs} processes per side, alternating"
    )
    got = measure_rss(rss_n, args.rss_runs, True)
    kv_b = Spread([r["bytes_per_block"] for r in got["kv"]])
    vl_b = Spread([r["bytes_per_block"] for r in got["vllm"]])
    mem_ratio = Spread([b / a for a, b in zip(kv_b.samples, vl_b.samples, strict=True)])
    estimate = got["kv"][0]["estimate"]
    print(
        f"  KV_v2 {kv_b.median:.1f} B/block [{min(kv_b.samples):.1f}-{max(kv_b.samples):.1f}] (its own estimate: "
        f"{estimate:.1f}); vLLM {vl_b.median:.1f} B/block [{min(vl_b.samples):.1f}-{max(vl_b.samples):.1f}]; "
        f"vLLM/KV_v2 {mem_ratio.cell('x')}"
    )
    document["memory"] = {
        "num_blocks": rss_n,
        "what": "resident set growth per block, fresh process, every block cached and free",
        "KV_v2": {**spread_json(kv_b), "estimate": estimate},
        "vLLM": spread_json(vl_b),
        "ratio": spread_json(mem_ratio),
    }
    print()
    for line in verdicts(document["sizes"], document["memory"]):
        print(line)
    print("\nrows:")
    for key, text in LEGEND.items():
        print(f"  {key:4} {text}")
    print("\n" + (SGLANG_NOTE if sg_mod else f"SGLang: not run ({why_sg})"))
    document["machine"]["load_avg_end"] = os.getloadavg()
    print(
        f"\nload average at end {document['machine']['load_avg_end'][0]:.2f}; recorded in "
        f"{record(document).relative_to(Path(__file__).resolve().parents[1])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
