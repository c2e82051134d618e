"""KV_v2's vLLM-format events, decoded by vLLM's own msgspec structs (vllm/distributed/
kv_events.py, fetched by benchmarks/fetch_vllm.sh) and compared with the events vLLM's
BlockPool emits for the same trace."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import Any

import kv_trace
import pytest
import vllm_shim

from pyagent_compile.runtime.kv import BlockHasher, KvPool


@pytest.fixture(scope="module")
def vllm() -> Iterator[Any]:
    os.environ.pop("PYTHONHASHSEED", None)
    try:
        v = vllm_shim.load()
    except vllm_shim.VllmUnavailable as e:
        pytest.skip(str(e))
    # Routers usually take vLLM's integer hash form; ours are always in it.
    v.envs.VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES = True
    yield v
    v.envs.VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES = False


def _decode(vllm: Any, data: bytes) -> Any:
    # msgspec comes from .bench-cache/pylib, which the shim put on sys.path.
    msgspec: Any = importlib.import_module("msgspec.msgpack")
    return msgspec.decode(data, type=vllm.events.KVEventBatch)


def _norm(e: Any) -> tuple[Any, ...]:
    kind = type(e).__name__
    if kind == "BlockStored":
        return (
            kind,
            list(e.block_hashes),
            e.parent_block_hash,
            list(e.token_ids),
            e.block_size,
            e.medium,
            e.group_idx,
        )
    if kind == "BlockRemoved":
        return (kind, list(e.block_hashes), e.medium, e.group_idx)
    return (kind,)


def test_batch_decodes_with_vllms_structs(vllm: Any) -> None:
    pool = KvPool(4, 4, events=True, hash_mode="sha256_cbor")
    tokens = list(range(12))
    keys, _ = BlockHasher(4, "sha256_cbor").hash_keys(tokens)
    ids, _ = pool.allocate(3)
    pool.register(ids, keys, None, tokens)
    pool.free_request(ids)
    pool.allocate(3)
    batch = _decode(vllm, pool.take_events_vllm(ts=12.5, data_parallel_rank=2))
    assert batch.ts == 12.5 and batch.data_parallel_rank == 2
    stored, *removed = batch.events
    ints = [int.from_bytes(keys[i : i + 16], "big") & (2**64 - 1) for i in range(0, 48, 16)]
    assert isinstance(stored, vllm.events.BlockStored)
    assert stored.block_hashes == ints and stored.parent_block_hash is None
    assert stored.token_ids == tokens and stored.block_size == 4 and stored.medium == "GPU"
    assert [r.block_hashes for r in removed] == [[h] for h in ints[::-1]]
    assert pool.take_events_vllm() != b"" and _decode(vllm, pool.take_events_vllm()).events == []


def test_replay_emits_the_same_events_as_vllm(vllm: Any) -> None:
    shape = kv_trace.TraceShape(
        seed=11,
        num_prompts=4,
        prompt_min=10,
        prompt_max=80,
        num_sessions=30,
        turns_max=3,
        user_min=1,
        user_max=40,
        output_min=0,
        output_max=40,
        decode_chunk=13,
        active=6,
        vocab=25,
    )
    bs, n_blocks = 4, 70
    ops = kv_trace.make_trace(shape)
    life: dict[int, list[int]] = {}
    for op in ops:
        if op[0] == "admit":
            life[op[1]] = list(op[2])
        elif op[0] == "grow":
            life[op[1]].extend(op[2])
    hasher = BlockHasher(bs, "sha256_cbor")
    v = kv_trace.VllmDriver(vllm, n_blocks, bs, events=True)
    pool = KvPool(n_blocks, bs, events=True, hash_mode="sha256_cbor")
    k = kv_trace.KvDriver(pool, hasher, bs, tokens=True)
    vo, ko = kv_trace.Outcome(), kv_trace.Outcome()
    seen = {"BlockStored": 0, "BlockRemoved": 0}
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
        theirs = [_norm(e) for e in v.pool.take_events()]
        ours = [_norm(e) for e in _decode(vllm, pool.take_events_vllm()).events]
        assert ours == theirs, f"step {step}"
        for e in theirs:
            seen[e[0]] += 1
    assert seen["BlockStored"] > 0 and seen["BlockRemoved"] > 0
