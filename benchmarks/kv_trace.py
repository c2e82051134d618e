"""Seeded traces of multi-turn agent sessions for the KV_v2 benchmark and differential test,
and drivers that replay one through vLLM's ``BlockPool`` or through KV_v2 the same way
vLLM's scheduler drives its pool (longest hit up to ``num_tokens - 1``, touch, allocate,
cache full blocks, free in reverse).

A trace is a list of operations on requests:
  ("admit", rid, tokens)   a new request with its whole prompt
  ("grow", rid, tokens)    tokens appended by decoding
  ("finish", rid)          the request ends and frees its blocks
Sessions share system prompts chosen by a Zipf law; each turn's prompt is the session's whole
context so far plus a new message, so turns hit the previous turn's blocks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from pyagent_compile.runtime.kv import KvOutOfBlocksError

Op = tuple[Any, ...]


@dataclass
class TraceShape:
    """Sizes of a trace, in tokens unless said otherwise."""

    seed: int = 0
    num_prompts: int = 24
    prompt_min: int = 1000
    prompt_max: int = 6000
    zipf_s: float = 1.1
    num_sessions: int = 400
    turns_min: int = 1
    turns_max: int = 6
    user_min: int = 30
    user_max: int = 400
    output_min: int = 20
    output_max: int = 300
    decode_chunk: int = 64
    active: int = 64
    vocab: int = 32000


@dataclass
class _Session:
    context: list[int]
    turns_left: int
    active: bool = False


@dataclass
class _Req:
    session: int
    output_left: int
    tokens: list[int] = field(default_factory=list)


def make_trace(shape: TraceShape) -> list[Op]:
    """Ops interleaving about ``shape.active`` concurrent requests."""
    rng = random.Random(shape.seed)
    prompts = [
        [rng.randrange(shape.vocab) for _ in range(rng.randint(shape.prompt_min, shape.prompt_max))]
        for _ in range(shape.num_prompts)
    ]
    weights = [1.0 / (i + 1) ** shape.zipf_s for i in range(shape.num_prompts)]
    sessions = [
        _Session(
            context=list(rng.choices(prompts, weights)[0]),
            turns_left=rng.randint(shape.turns_min, shape.turns_max),
        )
        for _ in range(shape.num_sessions)
    ]
    waiting = list(range(shape.num_sessions))
    rng.shuffle(waiting)
    running: dict[int, _Req] = {}
    ops: list[Op] = []
    next_rid = 0
    while waiting or running:
        if waiting and len(running) < shape.active:
            s = waiting.pop()
            sess = sessions[s]
            msg = [rng.randrange(shape.vocab) for _ in range(rng.randint(shape.user_min, shape.user_max))]
            sess.context.extend(msg)
            rid = next_rid
            next_rid += 1
            running[rid] = _Req(s, rng.randint(shape.output_min, shape.output_max), list(sess.context))
            ops.append(("admit", rid, list(sess.context)))
            continue
        rid = rng.choice(list(running))
        req = running[rid]
        if req.output_left > 0:
            n = min(req.output_left, rng.randint(1, shape.decode_chunk))
            new = [rng.randrange(shape.vocab) for _ in range(n)]
            req.output_left -= n
            req.tokens.extend(new)
            ops.append(("grow", rid, new))
            continue
        ops.append(("finish", rid))
        del running[rid]
        sess = sessions[req.session]
        sess.context = req.tokens
        sess.turns_left -= 1
        if sess.turns_left > 0:
            waiting.insert(rng.randrange(len(waiting) + 1), req.session)
    return ops


def distinct_blocks(ops: list[Op], block_size: int) -> int:
    """Distinct full-block prefixes the trace touches: its working set in blocks."""
    seen: set[int] = set()
    tokens: dict[int, list[int]] = {}
    for op in ops:
        if op[0] == "admit":
            tokens[op[1]] = list(op[2])
        elif op[0] == "grow":
            tokens[op[1]].extend(op[2])
        else:
            t = tokens.pop(op[1])
            h = 0
            for i in range(len(t) // block_size):
                h = hash((h, tuple(t[i * block_size : (i + 1) * block_size])))
                seen.add(h)
    return len(seen)


# ---- drivers ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a replay decided, for comparing two replays."""

    hits: list[int] = field(default_factory=list)
    tables: list[list[int]] = field(default_factory=list)
    rejected: int = 0
    query_blocks: int = 0
    hit_blocks: int = 0


class VllmDriver:
    """Replays a trace through vLLM's own ``BlockPool``.

    ``hashes`` given to :meth:`admit` are the request's block hashes over its whole life
    (precomputed); without them the driver hashes like vLLM's request block hasher.
    """

    def __init__(self, vllm: Any, num_blocks: int, block_size: int, events: bool = False) -> None:
        self.v = vllm
        self.bs = block_size
        self.pool = vllm.BlockPool(num_blocks, True, block_size, enable_kv_cache_events=events)
        self.reqs: dict[int, Any] = {}
        self.tables: dict[int, list[Any]] = {}
        self.cached: dict[int, int] = {}
        self.hashing: dict[int, bool] = {}

    def _hash_new_blocks(self, req: Any) -> None:
        bs = self.bs
        toks = req.all_token_ids
        hashes = req.block_hashes
        parent = hashes[-1] if hashes else None
        for i in range(len(hashes), len(toks) // bs):
            parent = self.v.hash_block_tokens(self.v.sha256_cbor, parent, toks[i * bs : (i + 1) * bs], None)
            hashes.append(parent)

    def admit(self, rid: int, tokens: list[int], hashes: list[bytes] | None, out: Outcome) -> None:
        # The attributes vLLM's stored events read (no LoRA, salt, multimodal or session).
        req = SimpleNamespace(
            all_token_ids=list(tokens),
            block_hashes=list(hashes) if hashes is not None else [],
            lora_request=None,
            session_id=None,
            mm_features=None,
            cache_salt=None,
            prompt_embeds=None,
        )
        if hashes is None:
            self._hash_new_blocks(req)
        pool = self.pool
        n = len(tokens)
        max_hit = (n - 1) // self.bs
        hits: list[Any] = []
        for h in req.block_hashes[:max_hit]:
            got = pool.get_cached_block(h, [0])
            if got is None:
                break
            hits.append(got[0])
        num_new = -(-n // self.bs) - len(hits)
        idle = sum(1 for b in hits if b.ref_cnt == 0)
        if num_new + idle > pool.get_num_free_blocks():
            out.rejected += 1
            out.hits.append(-1)
            return
        out.query_blocks += max_hit
        out.hit_blocks += len(hits)
        pool.touch(hits)
        table = hits + pool.get_new_blocks(num_new)
        # The prompt's blocks are cached when computed: at the request's next step, so two
        # requests prefilling the same new prefix at once both compute it (duplicates).
        self.reqs[rid] = req
        self.tables[rid] = table
        self.cached[rid] = len(hits)
        self.hashing[rid] = hashes is None
        out.hits.append(len(hits))

    def grow(self, rid: int, new: list[int]) -> None:
        if rid not in self.reqs:
            return
        req = self.reqs[rid]
        req.all_token_ids.extend(new)
        if self.hashing[rid]:
            self._hash_new_blocks(req)
        table = self.tables[rid]
        n = len(req.all_token_ids)
        need = -(-n // self.bs) - len(table)
        if need > 0:
            if need > self.pool.get_num_free_blocks():
                return  # a real scheduler preempts; here the request stops growing
            table.extend(self.pool.get_new_blocks(need))
        full = n // self.bs
        if full > self.cached[rid]:
            self.pool.cache_full_blocks(req, table, self.cached[rid], full, self.bs, 0)
            self.cached[rid] = full

    def finish(self, rid: int) -> None:
        if rid in self.tables:
            self.grow(rid, [])
            self.pool.free_blocks(reversed(self.tables.pop(rid)))
            del self.reqs[rid]

    def table_ids(self, rid: int) -> list[int]:
        return [b.block_id for b in self.tables.get(rid, [])]

    def free_order(self) -> list[int]:
        return [b.block_id for b in self.pool.free_block_queue.get_all_free_blocks()]


class KvDriver:
    """Replays a trace through KV_v2 (through the Python bindings), the same way.

    ``keys`` given to :meth:`admit` is the blob of the request's keys over its whole life;
    without it the driver hashes natively, continuing each request's chain as it grows.
    """

    def __init__(self, pool: Any, hasher: Any, block_size: int, tokens: bool = False) -> None:
        self.pool = pool
        self.hasher = hasher
        self.bs = block_size
        # With `tokens`, registrations pass the blocks' token ids (for vLLM-format events).
        self.with_tokens = tokens
        self.tokens: dict[int, list[int]] = {}
        self.tables: dict[int, list[int]] = {}
        self.keys: dict[int, bytes] = {}
        self.parent: dict[int, bytes | None] = {}
        self.ntok: dict[int, int] = {}
        self.cached: dict[int, int] = {}
        self.tail: dict[int, list[int]] = {}
        self.hashing: dict[int, bool] = {}

    def admit(self, rid: int, tokens: list[int], keys: bytes | None, out: Outcome) -> None:
        n = len(tokens)
        bs = self.bs
        hashing = keys is None
        if keys is None:
            keys, last = self.hasher.hash_keys(tokens)
            self.parent[rid] = last
        max_hit = (n - 1) // bs
        r = self.pool.admit(keys[: 16 * max_hit], -(-n // bs))
        if r is None:
            out.rejected += 1
            out.hits.append(-1)
            return
        table, hits, _evicted = r
        out.query_blocks += max_hit
        out.hit_blocks += hits
        full = n // bs
        self.tables[rid] = table
        self.keys[rid] = keys
        self.ntok[rid] = n
        if self.with_tokens:
            self.tokens[rid] = list(tokens)
        self.cached[rid] = hits
        self.hashing[rid] = hashing
        if hashing:
            self.tail[rid] = tokens[full * bs :]
        out.hits.append(hits)

    def grow(self, rid: int, new: list[int]) -> None:
        if rid not in self.tables:
            return
        bs = self.bs
        table = self.tables[rid]
        self.ntok[rid] += len(new)
        n = self.ntok[rid]
        if self.with_tokens:
            self.tokens[rid].extend(new)
        if self.hashing[rid]:
            tail = self.tail[rid] + new
            start = len(self.keys[rid]) // 16 * bs
            fresh, last = self.hasher.hash_keys(tail, self.parent[rid], start)
            if last is not None:
                self.parent[rid] = last
                self.keys[rid] += fresh
                tail = tail[(len(fresh) // 16) * bs :]
            self.tail[rid] = tail
        need = -(-n // bs) - len(table)
        if need > 0:
            try:
                ids, _ = self.pool.allocate(need)
            except KvOutOfBlocksError:
                return  # a real scheduler preempts; here the request stops growing
            table.extend(ids)
        full = n // bs
        c = self.cached[rid]
        if full > c:
            k = self.keys[rid]
            parent = k[16 * (c - 1) : 16 * c] if c else None
            toks = self.tokens[rid][c * bs : full * bs] if self.with_tokens else None
            table[c:full] = self.pool.register(table[c:full], k[16 * c : 16 * full], parent, toks)
            self.cached[rid] = full

    def finish(self, rid: int) -> None:
        if rid in self.tables:
            self.grow(rid, [])
            self.pool.free_request(self.tables.pop(rid))

    def table_ids(self, rid: int) -> list[int]:
        return list(self.tables.get(rid, []))

    def free_order(self) -> list[int]:
        return list(self.pool.free_order())
