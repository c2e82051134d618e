"""KV_v2 against vLLM's own BlockPool and hashing (vLLM's code fetched by
benchmarks/fetch_vllm.sh into .bench-cache/; skipped, saying why, when it is not there)."""

from __future__ import annotations

import os
import random
from types import SimpleNamespace
from typing import Any

import kv_trace
import pytest
import vllm_shim

from pyagent_compile.runtime.kv import BlockHasher, KvPool, split_keys


@pytest.fixture(scope="module")
def vllm() -> Any:
    os.environ.pop("PYTHONHASHSEED", None)  # NONE_HASH must be vLLM's default seed's
    try:
        return vllm_shim.load()
    except vllm_shim.VllmUnavailable as e:
        pytest.skip(str(e))


def _vllm_hashes(vllm: Any, tokens: list[int], bs: int, req: SimpleNamespace) -> list[bytes]:
    hasher = vllm.utils.get_request_block_hasher(bs, vllm.sha256_cbor)
    req.block_hashes = []
    req.all_token_ids = tokens
    req.num_tokens = len(tokens)
    out: list[bytes] = hasher(req)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_sha256_cbor_hashes_match_vllm_byte_for_byte(vllm: Any, seed: int) -> None:
    rng = random.Random(seed)
    bs = rng.choice([1, 4, 16, 32])
    tokens = [rng.randrange(1 << rng.choice([8, 16, 17, 31])) for _ in range(rng.randint(0, 300))]
    lora = ("adapter-" + str(rng.randrange(3)), f"/loras/{rng.randrange(9)}") if rng.random() < 0.5 else None
    salt = rng.choice([None, "", "tenant-a", "ünï"])
    mm: list[tuple[str, int, int]] = []
    pos = rng.randrange(20)
    while pos < len(tokens) and rng.random() < 0.7:
        length = rng.randint(1, 40)
        mm.append((f"img{len(mm)}", pos, length))
        pos += length + rng.randrange(30)
    req = SimpleNamespace(
        mm_features=[SimpleNamespace(identifier=i, mm_position=SimpleNamespace(offset=o, length=n)) for i, o, n in mm],
        lora_request=SimpleNamespace(lora_name=lora[0], lora_path=lora[1]) if lora else None,
        cache_salt=salt,
        prompt_embeds=None,
    )
    want = _vllm_hashes(vllm, tokens, bs, req)
    ours = BlockHasher(bs, "sha256_cbor").hash_digests(tokens, lora=lora, cache_salt=salt, mm=mm or None)
    assert ours == want
    # The pool key is the digest's last 16 bytes; its low 64 bits are vLLM's int hash form.
    keys, last = BlockHasher(bs, "sha256_cbor").hash_keys(tokens, lora=lora, cache_salt=salt, mm=mm or None)
    assert split_keys(keys) == [d[16:] for d in want]
    assert last == (want[-1] if want else None)


def _replay(
    vllm: Any,
    shape: kv_trace.TraceShape,
    num_blocks: int,
    bs: int,
    precomputed: bool = True,
) -> tuple[kv_trace.Outcome, kv_trace.Outcome]:
    ops = kv_trace.make_trace(shape)
    hasher = BlockHasher(bs, "sha256_cbor")
    v = kv_trace.VllmDriver(vllm, num_blocks, bs)
    k = kv_trace.KvDriver(KvPool(num_blocks, bs, hash_mode="sha256_cbor"), hasher, bs)
    vo, ko = kv_trace.Outcome(), kv_trace.Outcome()
    # Each request's lifetime tokens, so both sides get the same precomputed hashes.
    life: dict[int, list[int]] = {}
    for op in ops:
        if op[0] == "admit":
            life[op[1]] = list(op[2])
        elif op[0] == "grow":
            life[op[1]].extend(op[2])
    for step, op in enumerate(ops):
        if op[0] == "admit":
            rid, tokens = op[1], op[2]
            if precomputed:
                digests = hasher.hash_digests(life[rid])
                v.admit(rid, tokens, digests, vo)
                k.admit(rid, tokens, b"".join(d[16:] for d in digests), ko)
            else:  # each side hashes on its own, as the requests grow
                v.admit(rid, tokens, None, vo)
                k.admit(rid, tokens, None, ko)
            assert ko.hits[-1] == vo.hits[-1], f"step {step}: hits differ"
        elif op[0] == "grow":
            v.grow(op[1], op[2])
            k.grow(op[1], op[2])
        else:
            v.finish(op[1])
            k.finish(op[1])
        if op[0] != "finish":
            assert k.table_ids(op[1]) == v.table_ids(op[1]), f"step {step}: block tables differ"
        if step % 7 == 0:
            assert k.free_order() == v.free_order(), f"step {step}: eviction order differs"
    assert k.free_order() == v.free_order()
    k.pool.check_invariants()
    return vo, ko


@pytest.mark.parametrize("seed", range(6))
def test_lru_replay_matches_vllm_block_pool(vllm: Any, seed: int) -> None:
    shape = kv_trace.TraceShape(
        seed=seed,
        num_prompts=5,
        prompt_min=20,
        prompt_max=200,
        num_sessions=40,
        turns_max=4,
        user_min=1,
        user_max=60,
        output_min=0,
        output_max=50,
        decode_chunk=20,
        active=6,
        vocab=50,
    )
    vo, ko = _replay(vllm, shape, num_blocks=120, bs=4)
    assert vo.hits == ko.hits
    assert vo.rejected == ko.rejected
    assert sum(h for h in vo.hits if h > 0) > 0, "the trace must exercise prefix hits"


def test_replay_under_heavy_eviction_and_rejections(vllm: Any) -> None:
    shape = kv_trace.TraceShape(
        seed=99,
        num_prompts=3,
        prompt_min=40,
        prompt_max=120,
        num_sessions=60,
        turns_max=3,
        user_min=1,
        user_max=30,
        output_min=0,
        output_max=40,
        decode_chunk=9,
        active=8,
        vocab=7,
    )
    vo, ko = _replay(vllm, shape, num_blocks=60, bs=4)
    assert vo.rejected > 0, "the pool must be small enough to reject some admissions"
    assert vo.hits == ko.hits


def test_replay_with_each_side_hashing_as_requests_grow(vllm: Any) -> None:
    shape = kv_trace.TraceShape(
        seed=5,
        num_prompts=4,
        prompt_min=10,
        prompt_max=90,
        num_sessions=30,
        turns_max=4,
        user_min=1,
        user_max=40,
        output_min=0,
        output_max=45,
        decode_chunk=11,
        active=5,
        vocab=30,
    )
    vo, ko = _replay(vllm, shape, num_blocks=80, bs=4, precomputed=False)
    assert vo.hits == ko.hits
    assert sum(h for h in vo.hits if h > 0) > 0


class _ReqDriver:
    """KV_v2's request-level API (tables in Rust) driven like vLLM's scheduler: the pool is
    given the keys of full blocks only, as they fill."""

    def __init__(self, pool: KvPool, bs: int) -> None:
        self.pool, self.bs = pool, bs
        self.ntok: dict[int, int] = {}
        self.life: dict[int, bytes] = {}

    def admit(self, rid: int, tokens: list[int], life_keys: bytes, out: kv_trace.Outcome) -> None:
        n, bs = len(tokens), self.bs
        full = life_keys[: 16 * (n // bs)]
        hits = self.pool.req_admit(rid, full, -(-n // bs), (n - 1) // bs)
        out.hits.append(-1 if hits is None else hits)
        if hits is not None:
            self.ntok[rid] = n
            self.life[rid] = life_keys

    def grow(self, rid: int, new: list[int]) -> None:
        if rid not in self.ntok:
            return
        bs = self.bs
        before = self.ntok[rid] // bs
        self.ntok[rid] += len(new)
        after = self.ntok[rid] // bs
        fresh = self.life[rid][16 * before : 16 * after]
        self.pool.req_step(rid, -(-self.ntok[rid] // bs), fresh)

    def finish(self, rid: int) -> None:
        if rid in self.ntok:
            self.grow(rid, [])
            self.pool.req_free(rid)
            del self.ntok[rid]

    def table_ids(self, rid: int) -> list[int]:
        return self.pool.req_table(rid) if rid in self.ntok else []


@pytest.mark.parametrize("seed", range(4))
def test_request_api_replay_matches_vllm(vllm: Any, seed: int) -> None:
    shape = kv_trace.TraceShape(
        seed=seed,
        num_prompts=4,
        prompt_min=20,
        prompt_max=150,
        num_sessions=40,
        turns_max=4,
        user_min=1,
        user_max=50,
        output_min=0,
        output_max=50,
        decode_chunk=17,
        active=7,
        vocab=40,
    )
    bs, n_blocks = 4, 100
    ops = kv_trace.make_trace(shape)
    life: dict[int, list[int]] = {}
    for op in ops:
        if op[0] == "admit":
            life[op[1]] = list(op[2])
        elif op[0] == "grow":
            life[op[1]].extend(op[2])
    hasher = BlockHasher(bs, "sha256_cbor")
    v = kv_trace.VllmDriver(vllm, n_blocks, bs)
    pool = KvPool(n_blocks, bs, hash_mode="sha256_cbor")
    k = _ReqDriver(pool, bs)
    vo, ko = kv_trace.Outcome(), kv_trace.Outcome()
    for step, op in enumerate(ops):
        if op[0] == "admit":
            digests = hasher.hash_digests(life[op[1]])
            v.admit(op[1], op[2], digests, vo)
            k.admit(op[1], op[2], b"".join(d[16:] for d in digests), ko)
        elif op[0] == "grow":
            v.grow(op[1], op[2])
            k.grow(op[1], op[2])
        else:
            v.finish(op[1])
            k.finish(op[1])
        if op[0] != "finish":
            assert k.table_ids(op[1]) == v.table_ids(op[1]), f"step {step}"
        assert pool.free_order() == v.free_order(), f"step {step}: eviction order"
    assert ko.hits == vo.hits
    assert max(vo.hits) > 0


def test_larger_replay_with_realistic_block_size(vllm: Any) -> None:
    shape = kv_trace.TraceShape(
        seed=2026,
        num_prompts=8,
        prompt_min=200,
        prompt_max=900,
        num_sessions=60,
        turns_max=4,
        user_min=10,
        user_max=120,
        output_min=5,
        output_max=120,
        decode_chunk=32,
        active=12,
        vocab=32000,
    )
    vo, ko = _replay(vllm, shape, num_blocks=400, bs=16)
    assert vo.hits == ko.hits
    assert sum(h for h in vo.hits if h > 0) > 100
