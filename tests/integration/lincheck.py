"""A linearizability checker for key-value histories, after porcupine (Anish Athalye).

The algorithm is Wing & Gong's backtracking search with Lowe's memoisation, as porcupine
implements it: walk a doubly linked list of call/return events in time order; try to
linearize the earliest pending call whose step is legal in the model, lift it (and its
return) out of the list, and backtrack when a return is reached before its call was
linearized. A cache of (set of linearized operations, model state) prunes states already
explored. The model is P-compositional over keys (Horn & Kroening): a history is
linearizable iff its sub-history of each key is, so each key is checked alone.

Operations whose outcome the client never learned (a timeout, a connection reset while the
leader was killed) are given a return time of +infinity, as porcupine does: they may have
taken effect at any point after their call, or never. Reads with an unknown outcome carry
no information and are left out. So are writes with an unknown outcome whose value no read
observed (values are unique per write): if the history is linearizable at all, it is with
such a write taking no effect, since no read sits between it and the next write; keeping
them would only multiply the search by 2 per pending write.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["put", "get"]


@dataclass(frozen=True)
class Operation:
    """One client operation: `put` wrote `value`; `get` observed `value` (None: no such key)."""

    client: int
    call: float
    ret: float  # math.inf when the outcome is unknown
    kind: Kind
    key: str
    value: str | None


@dataclass(frozen=True)
class CheckResult:
    ok: bool | None  # None: the search hit its step budget before deciding
    key: str | None = None  # the first key whose sub-history is not linearizable
    operations: int = 0
    steps: int = 0


def _step(state: str | None, op: Operation) -> tuple[bool, str | None]:
    if op.kind == "put":
        return True, op.value
    return op.value == state, state


@dataclass(eq=False)
class _Node:
    op: int  # index into the operations; -1 for the sentinel
    is_call: bool
    prev: _Node | None = None
    next: _Node | None = None
    match: _Node | None = field(default=None, repr=False)  # a call's return node


def _build_list(ops: list[Operation]) -> _Node:
    events: list[tuple[float, int, int]] = []
    for index, op in enumerate(ops):
        # At equal times calls sort before returns: the operations overlap, which is the
        # permissive reading of a clock that cannot order them.
        events.append((op.call, 0, index))
        events.append((op.ret, 1, index))
    events.sort()
    head = _Node(-1, False)
    tail = head
    calls: dict[int, _Node] = {}
    for _, kind, index in events:
        node = _Node(index, kind == 0, prev=tail)
        tail.next = node
        tail = node
        if kind == 0:
            calls[index] = node
        else:
            calls[index].match = node
    return head


def _lift(call: _Node) -> None:
    for node in (call, call.match):
        assert node is not None and node.prev is not None
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(call: _Node) -> None:
    for node in (call.match, call):
        assert node is not None and node.prev is not None
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


def check_key(ops: list[Operation], max_steps: int = 5_000_000) -> tuple[bool | None, int]:
    """(linearizable?, steps) for the operations of one key, starting from an absent key."""
    if not ops:
        return True, 0
    head = _build_list(ops)
    state: str | None = None
    linearized = 0
    cache: set[tuple[int, str | None]] = set()
    stack: list[tuple[_Node, str | None]] = []
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return None, steps
        assert entry is not None
        if entry.is_call:
            legal, new_state = _step(state, ops[entry.op])
            if legal:
                new_linearized = linearized | (1 << entry.op)
                if (new_linearized, new_state) not in cache:
                    cache.add((new_linearized, new_state))
                    stack.append((entry, state))
                    state, linearized = new_state, new_linearized
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # A return before its call was linearized: undo the latest choice and try the next.
            if not stack:
                return False, steps
            entry, state = stack.pop()
            linearized &= ~(1 << entry.op)
            _unlift(entry)
            entry = entry.next
    return True, steps


def check(history: Iterable[Operation], max_steps: int = 5_000_000) -> CheckResult:
    """Check a whole history, key by key (P-compositionality)."""
    by_key: dict[str, list[Operation]] = {}
    count = 0
    for op in history:
        if op.ret < op.call:
            raise ValueError(f"operation returns before its call: {op}")
        if op.kind == "get" and math.isinf(op.ret):
            continue  # an unanswered read tells nothing
        by_key.setdefault(op.key, []).append(op)
        count += 1
    total = 0
    for key in sorted(by_key):
        observed = {op.value for op in by_key[key] if op.kind == "get"}
        ops = [op for op in by_key[key] if not (op.kind == "put" and math.isinf(op.ret) and op.value not in observed)]
        ok, steps = check_key(ops, max_steps)
        total += steps
        if ok is not True:
            return CheckResult(ok, key, count, total)
    return CheckResult(True, None, count, total)
