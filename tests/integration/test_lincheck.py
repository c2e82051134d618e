"""The linearizability checker on known histories: it must reject what is wrong, accept what
is right, and agree with brute force on small random histories."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integration.lincheck import Operation, check, check_key

INF = math.inf


def put(client: int, call: float, ret: float, value: str, key: str = "x") -> Operation:
    return Operation(client, call, ret, "put", key, value)


def get(client: int, call: float, ret: float, value: str | None, key: str = "x") -> Operation:
    return Operation(client, call, ret, "get", key, value)


def test_empty_history_is_linearizable() -> None:
    assert check([]).ok is True


def test_sequential_history() -> None:
    assert check([put(0, 0, 1, "a"), get(1, 2, 3, "a"), put(0, 4, 5, "b"), get(1, 6, 7, "b")]).ok is True


def test_stale_read_after_acknowledged_write_is_rejected() -> None:
    # The write was acknowledged before the read began: the read must see it.
    result = check([put(0, 0, 1, "a"), get(1, 2, 3, None)])
    assert result.ok is False
    assert result.key == "x"


def test_read_of_a_value_never_written_is_rejected() -> None:
    assert check([put(0, 0, 1, "a"), get(1, 2, 3, "zzz")]).ok is False


def test_new_then_old_read_is_rejected() -> None:
    # A write concurrent with two sequential reads: once a read saw the new value, a later
    # read cannot see the old one (the classic non-linearizable "flicker").
    history = [put(0, 0, 10, "b"), get(1, 1, 2, "b"), get(2, 3, 4, None)]
    assert check(history).ok is False


def test_concurrent_write_may_be_seen_or_not() -> None:
    assert check([put(0, 0, 10, "b"), get(1, 1, 2, None), get(2, 3, 4, "b")]).ok is True
    assert check([put(0, 0, 10, "b"), get(1, 1, 2, "b")]).ok is True


def test_lost_acknowledged_write_is_rejected() -> None:
    # b acknowledged after a; a later read sees a: b was lost (what a leader crash must not do).
    history = [put(0, 0, 1, "a"), put(0, 2, 3, "b"), get(1, 4, 5, "a")]
    assert check(history).ok is False


def test_unknown_outcome_write_may_or_may_not_apply() -> None:
    # The client never heard back (leader killed): the write may apply later, or never.
    assert check([put(0, 0, INF, "a"), get(1, 5, 6, None)]).ok is True
    assert check([put(0, 0, INF, "a"), get(1, 5, 6, "a")]).ok is True
    # ... but not before it was called.
    assert check([get(1, 0, 1, "a"), put(0, 2, INF, "a")]).ok is False
    # ... and once seen it stays (no flicker back).
    assert check([put(0, 0, INF, "a"), get(1, 5, 6, "a"), get(1, 7, 8, None)]).ok is False


def test_many_unobserved_unknown_writes_stay_cheap() -> None:
    # 40 writes whose clients never heard back and that nobody read: without pruning the
    # search would branch on each; with it the history is decided at once.
    history = [put(i, i, INF, f"lost{i}") for i in range(40)]
    history += [put(99, 0, 1, "a"), get(98, 50, 51, "a")]
    result = check(history, max_steps=1000)
    assert result.ok is True
    # an unknown write that *was* observed still counts: the read after it cannot go back
    history += [put(97, 52, INF, "b"), get(98, 60, 61, "b"), get(98, 62, 63, "a")]
    assert check(history).ok is False


def test_unknown_outcome_reads_are_ignored() -> None:
    assert check([put(0, 0, 1, "a"), get(1, 2, INF, None)]).ok is True


def test_keys_are_checked_independently() -> None:
    history = [put(0, 0, 1, "a", "x"), put(1, 0, 1, "b", "y"), get(2, 2, 3, "a", "x"), get(2, 4, 5, None, "y")]
    result = check(history)
    assert result.ok is False
    assert result.key == "y"


def test_overlapping_writes_with_interleaved_reads() -> None:
    # Two concurrent writes; readers agree on one order (a then b).
    history = [put(0, 0, 10, "a"), put(1, 0, 10, "b"), get(2, 1, 2, "a"), get(2, 3, 4, "b"), get(3, 11, 12, "b")]
    assert check(history).ok is True
    # Readers disagree on the order: a then b, and later b then a, with nothing writing a again.
    history = [put(0, 0, 10, "a"), put(1, 0, 10, "b"), get(2, 1, 2, "a"), get(2, 3, 4, "b"), get(3, 5, 6, "a")]
    assert check(history).ok is False


def test_step_budget_reports_unknown() -> None:
    # Many concurrent writes and one impossible read: the search is exponential without the
    # cache; with a tiny budget it must say "unknown", never "linearizable".
    history = [put(i, 0, 100, str(i)) for i in range(12)] + [get(99, 101, 102, "nope")]
    assert check(history, max_steps=10).ok is None
    assert check(history).ok is False


def test_large_sequential_history_is_fast() -> None:
    history = []
    for i in range(2000):
        history.append(put(0, 2 * i, 2 * i + 1, str(i), key=f"k{i % 10}"))
    assert check(history).ok is True


# -- agreement with brute force ----------------------------------------------------------------
def brute_force(ops: list[Operation]) -> bool:
    """Try every total order that respects real time; slow, obviously right."""
    for order in itertools.permutations(range(len(ops))):
        position = {op: i for i, op in enumerate(order)}
        if any(ops[a].ret < ops[b].call and position[a] > position[b] for a in order for b in order):
            continue
        state: str | None = None
        for index in order:
            op = ops[index]
            if op.kind == "put":
                state = op.value
            elif op.value != state:
                break
        else:
            return True
    return False


@st.composite
def small_histories(draw: st.DrawFn) -> list[Operation]:
    count = draw(st.integers(1, 5))
    ops = []
    for client in range(count):
        call = draw(st.integers(0, 8))
        ret = call + draw(st.integers(1, 4))
        if draw(st.booleans()):
            ops.append(put(client, call, ret, draw(st.sampled_from("ab"))))
        else:
            ops.append(get(client, call, ret, draw(st.sampled_from(["a", "b", None]))))
    return ops


@settings(max_examples=300, deadline=None)
@given(small_histories())
def test_agrees_with_brute_force(ops: list[Operation]) -> None:
    ok, _ = check_key(ops)
    assert ok is brute_force(ops)
