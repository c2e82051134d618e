"""KV_v2 through its Python bindings: behaviour, errors, persistence, and invariants under
random operation sequences (hypothesis)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyagent_compile.runtime.kv import (
    BlockHasher,
    KvCacheError,
    KvCorruptIndexError,
    KvOutOfBlocksError,
    KvPool,
    join_keys,
    split_keys,
)


def keys_for(tokens: list[int], bs: int = 4, **kw: object) -> bytes:
    blob, _ = BlockHasher(bs).hash_keys(tokens, **kw)  # type: ignore[arg-type]
    return blob


def test_admit_register_free_then_hit() -> None:
    pool = KvPool(16, 4)
    keys = keys_for(list(range(20)))
    assert len(keys) == 5 * 16
    got = pool.admit(keys, 5)
    assert got is not None
    table, hits, evicted = got
    assert (hits, evicted) == (0, b"")
    assert pool.register(table, keys) == table
    pool.free_request(table)
    assert pool.lookup(keys) == 5
    assert pool.lookup_blocks(keys) == table
    again = pool.admit(keys, 6)
    assert again is not None and again[1] == 5
    st_ = pool.stats()
    assert (st_.query_blocks, st_.hit_blocks) == (10, 5)
    assert st_.hit_rate == pytest.approx(0.5)
    pool.check_invariants()


def test_salts_and_adapters_never_share_blocks() -> None:
    pool = KvPool(32, 4)
    toks = [1, 2, 3, 4, 5, 6, 7, 8]
    plain = keys_for(toks)
    got = pool.admit(plain, 2)
    assert got is not None
    pool.register(got[0], plain)
    assert pool.lookup(plain) == 2
    assert pool.lookup(keys_for(toks, cache_salt="tenant-b")) == 0
    assert pool.lookup(keys_for(toks, lora=("a", "/p"))) == 0


def test_out_of_blocks_is_typed_and_changes_nothing() -> None:
    pool = KvPool(4, 4)
    assert pool.admit(keys_for(list(range(16))), 4) is None
    assert pool.stats().free == 3
    with pytest.raises(KvOutOfBlocksError, match="wanted 4"):
        pool.allocate(4)
    with pytest.raises(KvCacheError, match="double free"):
        pool.free([1])
    with pytest.raises(ValueError, match="multiple of 16"):
        pool.lookup(b"short")
    with pytest.raises(ValueError, match="unknown policy"):
        KvPool(4, 4, policy="mru")


def test_events_are_batched_with_monotonic_ids() -> None:
    pool = KvPool(4, 4, events=True)
    keys = keys_for(list(range(12)))
    ids, _ = pool.allocate(3)
    pool.register(ids, keys)
    pool.free_request(ids)
    pool.allocate(3)
    events = pool.take_events()
    assert [e.kind for e in events] == ["stored", "removed", "removed", "removed"]
    assert [e.id for e in events] == [0, 1, 2, 3]
    assert events[0].keys == keys and events[0].parent is None
    # Reverse free order: the tail block of the request is evicted first.
    assert [e.keys for e in events[1:]] == split_keys(keys)[::-1]
    assert pool.take_events() == []


def test_pins_keep_a_system_prompt_through_pressure() -> None:
    pool = KvPool(8, 4, policy="priority")
    sys_keys = keys_for(list(range(12)))
    ids, _ = pool.allocate(3)
    pool.register(ids, sys_keys)
    pool.pin(ids)
    pool.free_request(ids)
    for _ in range(5):
        t, _ = pool.allocate(4)
        pool.free_request(t)
    assert pool.lookup(sys_keys) == 3
    assert pool.stats().pinned == 3


def test_fork_and_copy_on_write() -> None:
    pool = KvPool(8, 4)
    t, _ = pool.allocate(2)
    child = pool.fork(t)
    assert pool.ref_count(t[0]) == 2
    new, must_copy = pool.make_writable(child[1])
    assert must_copy and new != t[1] and pool.is_writable(new)


def test_host_tier_offload_and_load_back() -> None:
    pool = KvPool(4, 4, host_blocks=8)
    keys = keys_for(list(range(12)))
    t, _ = pool.allocate(3)
    pool.register(t, keys)
    pool.free_request(t)
    pool.allocate(3)
    offs = pool.take_offloads()
    assert sorted(k for _, _, k in offs) == sorted(split_keys(keys))
    assert pool.lookup(keys) == 0 and pool.lookup_host(keys) == 3


def test_index_persists_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    pool = KvPool(16, 4, hash_mode="blake3")
    keys = BlockHasher(4, "blake3").hash_keys(list(range(40)))[0]
    got = pool.admit(keys, 10)
    assert got is not None
    pool.register(got[0], keys)
    pool.free_request(got[0])
    path = tmp_path / "kv.idx"
    pool.save(path)

    restarted = KvPool(16, 4, hash_mode="blake3")
    assert restarted.load(path) == 10
    assert restarted.lookup(keys) == 10
    assert restarted.free_order() == pool.free_order()
    restarted.check_invariants()

    data = path.read_bytes()
    for bad in (
        data[: len(data) // 2],
        data[:10],
        data[:-1] + bytes([data[-1] ^ 0xFF]),
        b"",
    ):
        path.write_bytes(bad)
        fresh = KvPool(16, 4, hash_mode="blake3")
        with pytest.raises(KvCorruptIndexError):
            fresh.load(path)
        assert fresh.stats().cached == 0
    with pytest.raises(KvCorruptIndexError, match="hash mode"):
        KvPool(16, 4, hash_mode="xxh3").loads(data)
    with pytest.raises(KvCacheError, match="No such file"):
        KvPool(16, 4).load(tmp_path / "missing")


def test_metadata_per_block_is_at_most_64_bytes() -> None:
    assert KvPool(100_000, 16).stats().metadata_bytes_per_block <= 64


def test_key_helpers_round_trip() -> None:
    blob = keys_for(list(range(8)))
    assert join_keys(split_keys(blob)) == blob
    with pytest.raises(ValueError):
        join_keys([b"x"])


op = st.one_of(
    st.tuples(st.just("admit"), st.integers(0, 4), st.integers(1, 8)),
    st.tuples(st.just("free"), st.integers(0, 100)),
    st.tuples(st.just("fork"), st.integers(0, 100)),
    st.tuples(st.just("cow"), st.integers(0, 100), st.integers(0, 8)),
    st.tuples(st.just("pin"), st.integers(0, 100)),
    st.tuples(st.just("unpin"), st.integers(0, 100)),
    st.tuples(st.just("evict"), st.integers(0, 100)),
    st.tuples(st.just("reset")),
)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(3, 20),
    policy=st.sampled_from(["lru", "lfu", "priority"]),
    dedup=st.booleans(),
    ops=st.lists(op, max_size=60),
)
def test_invariants_hold_through_the_bindings(n: int, policy: str, dedup: bool, ops: list[tuple[Any, ...]]) -> None:
    pool = KvPool(n, 4, policy=policy, dedup=dedup, host_blocks=2)
    hasher = BlockHasher(4)
    tables: list[list[int]] = []
    for o in ops:
        kind = o[0]
        pick = (int(o[1]) % len(tables)) if len(o) > 1 and tables else None
        if kind == "admit":
            keys, _ = hasher.hash_keys([int(o[1])] * 4 * int(o[2]))
            got = pool.admit(keys, int(o[2]))
            if got is not None:
                table, hits, _ = got
                table[hits:] = pool.register(table[hits:], keys[16 * hits :])
                tables.append(table)
        elif kind == "free" and pick is not None:
            pool.free_request(tables.pop(pick))
        elif kind == "fork" and pick is not None:
            tables.append(pool.fork(tables[pick]))
        elif kind == "cow" and pick is not None:
            slot = int(o[2]) % len(tables[pick])
            with contextlib.suppress(KvOutOfBlocksError):
                tables[pick][slot], _ = pool.make_writable(tables[pick][slot])
        elif kind == "pin" and pick is not None:
            pool.pin(tables[pick])
        elif kind == "unpin" and pick is not None:
            pool.unpin(tables[pick])
        elif kind == "evict" and pick is not None:
            pool.evict(tables[pick])
        elif kind == "reset":
            if tables:
                with pytest.raises(KvCacheError, match="in use"):
                    pool.reset()
            else:
                pool.unpin(list(range(1, n)))
                pool.reset()
        pool.check_invariants()
        held: dict[int, int] = {}
        for t in tables:
            for b in t:
                held[b] = held.get(b, 0) + 1
        for b in range(1, n):
            assert pool.ref_count(b) == held.get(b, 0)
    for t in tables:
        pool.free_request(t)
    pool.check_invariants()
    assert pool.stats().used == 0


def test_request_tables_stay_in_rust() -> None:
    pool = KvPool(16, 4)
    keys = keys_for(list(range(14)))  # 3 full blocks, 4 blocks in all
    assert pool.req_admit(7, keys, 4, max_hit=3) == 0
    assert pool.req_step(7, 4) == 3, "the three full blocks are cached"
    table = pool.req_table(7)
    assert len(table) == 4
    packed = pool.req_table_bytes(7)
    assert [int.from_bytes(packed[i : i + 4], "little") for i in range(0, 16, 4)] == table
    more = keys_for(list(range(16)))[48:]
    assert pool.req_step(7, 5, more) == 1
    assert pool.req_step(7, 99) is None, "does not fit: nothing changes"
    assert len(pool.req_table(7)) == 5
    pool.req_fork(7, 8)
    assert pool.ref_count(table[0]) == 2
    with pytest.raises(KvCacheError, match="already exists"):
        pool.req_admit(8, keys, 1)
    assert pool.req_free(7) == 5 and pool.req_free(8) == 5
    with pytest.raises(KvCacheError, match="unknown request 7"):
        pool.req_free(7)
    assert pool.num_requests() == 0
    assert pool.req_admit(9, keys, 4, max_hit=3) == 3
    pool.check_invariants()


def test_req_step_many_is_req_step_in_order() -> None:
    toks = {r: list(range(r * 100, r * 100 + 40)) for r in (1, 2, 3)}
    one, many = KvPool(12, 4), KvPool(12, 4)
    for p in (one, many):
        for r in (1, 2, 3):
            assert p.req_admit(r, keys_for(toks[r][:6]), 2, max_hit=1) == 0
    # Growth past the pool's size: later steps evict, and the last does not fit.
    steps = [(1, 3, keys_for(toks[1][:12])[16:]), (2, 4, keys_for(toks[2][:16])[16:]), (1, 4, b"")]
    steps += [(3, 5, keys_for(toks[3][:20])[16:]), (2, 9, b"")]
    expect = [one.req_step(r, t, k) for r, t, k in steps]
    assert many.req_step_many(steps) == expect
    assert expect[-1] is None
    for r in (1, 2, 3):
        assert many.req_table(r) == one.req_table(r)
    assert many.free_order() == one.free_order()
    with pytest.raises(KvCacheError, match="unknown request 9"):
        many.req_step_many([(1, 4, b""), (9, 1, b"")])
    with pytest.raises(ValueError, match="multiple of 16"):
        many.req_step_many([(1, 4, b"x")])
    many.check_invariants()


def test_allocate_ids_is_allocate_without_the_evicted_keys() -> None:
    a, b = KvPool(6, 4, events=True), KvPool(6, 4, events=True)
    keys = keys_for(list(range(20)))
    for p in (a, b):
        ids, _ = p.allocate(5)
        p.register(ids, keys)
        p.free_request(ids)
        p.take_events()
    got, evicted = a.allocate(3)
    assert b.allocate_ids(3) == got and len(evicted) == 48
    assert [e.kind for e in b.take_events()] == [e.kind for e in a.take_events()]
    with pytest.raises(KvOutOfBlocksError):
        b.allocate_ids(3)
    assert b.free_order() == a.free_order()
    b.check_invariants()


def test_ttl_and_lfu_policies_through_the_bindings() -> None:
    pool = KvPool(8, 4, policy="ttl", ttl=10)
    keys = keys_for(list(range(8)))
    pool.set_time(100)
    ids, _ = pool.allocate(2)
    pool.register(ids, keys)
    pool.free_request(ids)
    pool.set_time(109)
    assert pool.lookup(keys) == 2
    pool.set_time(110)
    assert pool.lookup(keys) == 0, "stale blocks stop hitting"
    assert split_keys(pool.expire()) == split_keys(keys)[::-1], "in eviction order"
    assert pool.stats().cached == 0
    with pytest.raises(ValueError, match="ttl > 0"):
        KvPool(8, 4, policy="ttl")

    lfu = KvPool(4, 4, policy="lfu")
    a, b = keys_for([1, 1, 1, 1]), keys_for([2, 2, 2, 2])
    for k in (a, b):
        got = lfu.admit(k, 1)
        assert got is not None
        lfu.register(got[0], k)
        lfu.free_request(got[0])
    for _ in range(3):
        lfu.free_request(lfu.acquire(a))
    _, evicted = lfu.allocate(2)
    assert evicted == b, "the less used block goes first"


def test_bad_shapes_and_extreme_inputs_are_errors_not_crashes() -> None:
    with pytest.raises(KvCacheError, match="num_blocks"):
        KvPool(2**31 + 1, 16)
    with pytest.raises(KvCacheError, match="num_blocks"):
        KvPool(1, 16)
    with pytest.raises(KvCacheError, match="block_size"):
        KvPool(8, 0)
    with pytest.raises(OverflowError):
        KvPool(8, 4).free([-1])
    h = BlockHasher(4, "sha256_cbor")
    far = 2**64 - 1
    assert len(h.hash_digests([1] * 8, first_token=far - 3, mm=[("x", far, far)])) == 2
    assert len(BlockHasher(4).hash_keys([1] * 8, mm=[("x", 0, far)])[0]) == 32
