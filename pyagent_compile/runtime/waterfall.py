"""A task's waterfall: its committed record (submission, owner, placements, each step's start and
end) as a tree with the sub-tasks it delegated (`<task>.<step>`) nested under their steps, and
that tree laid out as aligned bars on one time axis.

Pure: the tree is built from task views as `view_to_json` gives them (a `lookup` callable fetches
a sub-task's view, so tests feed recorded views), and the layout is a function of the tree, the
width and the time "now" stands for. `pyagent trace` (commands/trace.py) does the I/O.

What the record holds decides what is drawn: a task's record has its submission and its end,
each step its start and end, but not the moment of placement, so the first bar of a task is
the wait from submission to its first step's start ("queued"), which includes placement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# View of a task by id, or None when the swarm has no such task.
Lookup = Callable[[str], dict[str, Any] | None]
# How deep delegation is followed: a cycle is impossible (ids grow), this only bounds the output.
MAX_DEPTH = 16
STATE_MARKS = {"succeeded": "ok", "failed": "FAILED", "cancelled": "cancelled", "running": "running"}
# ANSI colours per state, on a terminal only.
COLOURS = {"succeeded": "32", "failed": "31", "cancelled": "33", "running": "36", "queued": "2", "pending": "2"}


@dataclass
class StepNode:
    id: str
    kind: str
    state: str
    attempt: int
    started_ms: int
    finished_ms: int
    error_code: str = ""
    error: str = ""
    task: TaskNode | None = None


@dataclass
class TaskNode:
    id: str
    manifest: str
    core: str
    state: str
    owner: int
    placements: int
    submitted_ms: int
    finished_ms: int
    error_code: str = ""
    reason: str = ""
    steps: list[StepNode] = field(default_factory=list)

    def first_start_ms(self) -> int:
        return min((s.started_ms for s in self.steps if s.started_ms), default=0)


def child_id(task_id: str, step_id: str) -> str:
    """The id of the sub-task a delegate step submits (the executor's naming)."""
    return f"{task_id}.{step_id}"


def build_tree(view: dict[str, Any], lookup: Lookup, depth: int = 0) -> TaskNode:
    node = TaskNode(
        id=view["id"],
        manifest=view["manifest"],
        core=view["core"],
        state=view["state"],
        owner=int(view.get("owner") or 0),
        placements=int(view.get("placements") or 0),
        submitted_ms=int(view.get("submittedMs") or 0),
        finished_ms=int(view.get("finishedMs") or 0),
        error_code=view.get("errorCode") or "",
        reason=view.get("reason") or "",
    )
    for step in view.get("steps", []):
        child = None
        if step["kind"] == "delegate" and depth < MAX_DEPTH:
            sub = lookup(child_id(node.id, step["id"]))
            child = build_tree(sub, lookup, depth + 1) if sub is not None else None
        node.steps.append(
            StepNode(
                id=step["id"],
                kind=step["kind"],
                state=step["state"],
                attempt=int(step.get("attempt") or 0),
                started_ms=int(step.get("startedMs") or 0),
                finished_ms=int(step.get("finishedMs") or 0),
                error_code=step.get("errorCode") or "",
                error=step.get("error") or "",
                task=child,
            )
        )
    return node


def _offset(ms: int, origin: int) -> int | None:
    return ms - origin if ms else None


def tree_to_json(node: TaskNode, origin: int | None = None) -> dict[str, Any]:
    """The tree with the record's times and each time's offset from the root's submission."""
    origin = node.submitted_ms if origin is None else origin
    return {
        "id": node.id,
        "manifest": node.manifest,
        "core": node.core,
        "state": node.state,
        "owner": node.owner,
        "placements": node.placements,
        "errorCode": node.error_code,
        "reason": node.reason,
        "submittedMs": node.submitted_ms,
        "finishedMs": node.finished_ms,
        "submittedOffsetMs": _offset(node.submitted_ms, origin),
        "finishedOffsetMs": _offset(node.finished_ms, origin),
        "steps": [
            {
                "id": s.id,
                "kind": s.kind,
                "state": s.state,
                "attempt": s.attempt,
                "errorCode": s.error_code,
                "error": s.error,
                "startedMs": s.started_ms,
                "finishedMs": s.finished_ms,
                "startedOffsetMs": _offset(s.started_ms, origin),
                "finishedOffsetMs": _offset(s.finished_ms, origin),
                "task": tree_to_json(s.task, origin) if s.task is not None else None,
            }
            for s in node.steps
        ],
    }


# -- layout ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    label: str
    detail: str
    state: str
    start: int | None
    end: int | None


def _rows(node: TaskNode, now_ms: int, indent: int = 0) -> list[Row]:
    pad = "  " * indent
    owner = f"node {node.owner}" if node.owner else "unplaced"
    detail = f"{node.manifest} on {owner}, placed {node.placements}x"
    rows = [Row(f"{pad}task {node.id}", detail, node.state, node.submitted_ms, node.finished_ms or now_ms)]
    first = node.first_start_ms()
    if node.submitted_ms:
        wait_end = first or (node.finished_ms or now_ms)
        rows.append(Row(f"{pad}  queued", "submitted -> first step", "queued", node.submitted_ms, wait_end))
    for step in node.steps:
        end = step.finished_ms or (now_ms if step.started_ms else 0)
        try_ = f", try {step.attempt}" if step.attempt > 1 else ""
        detail = f"{step.kind}, {STATE_MARKS.get(step.state, step.state)}{try_}"
        if step.error_code:
            detail += f" {step.error_code}"
        rows.append(Row(f"{pad}  {step.id}", detail, step.state, step.started_ms or None, end or None))
        if step.task is not None:
            rows.extend(_rows(step.task, now_ms, indent + 2))
    return rows


def _span(rows: list[Row]) -> tuple[int, int]:
    starts = [r.start for r in rows if r.start]
    ends = [r.end for r in rows if r.end]
    origin = min(starts, default=0)
    return origin, max([*ends, *starts, origin])


def _bar(start: int | None, end: int | None, origin: int, scale: float, width: int, fancy: bool) -> str:
    cells = [" "] * width
    if start is None:
        return "".join(cells)
    first = min(width - 1, int((start - origin) * scale))
    last = min(width - 1, max(first, int(((end or start) - origin) * scale + 0.5) - 1))
    for i in range(first, last + 1):
        cells[i] = "█" if fancy else "#"
    return "".join(cells)


def _ms(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value} ms"


def render_waterfall(node: TaskNode, width: int, now_ms: int, fancy: bool = False) -> str:
    """The tree as aligned rows: label, detail, a bar on the shared time axis, the duration.
    `fancy` (a terminal) draws block characters in the state's colour; otherwise plain ASCII."""
    rows = _rows(node, now_ms)
    origin, end = _span(rows)
    label_w = max(len(r.label) for r in rows)
    detail_w = max(len(r.detail) for r in rows)
    time_w = 9
    # A row is label, detail, |bar|, time with two-space gaps; one column is left free, as a full
    # last column wraps in some terminals.
    bar_w = max(10, width - label_w - detail_w - time_w - 8)
    scale = bar_w / max(1, end - origin)
    total = end - origin
    state = STATE_MARKS.get(node.state, node.state)
    head = f"trace {node.id} ({node.manifest}, core {node.core}): {state}, {_ms(total)}"
    axis_pad = " " * (label_w + detail_w + 4)
    right = _ms(total)
    lines = [head, f"{axis_pad}|0 ms{right.rjust(bar_w - 4)}|"]
    for row in rows:
        bar = _bar(row.start, row.end, origin, scale, bar_w, fancy)
        if fancy and row.state in COLOURS:
            bar = f"\x1b[{COLOURS[row.state]}m{bar}\x1b[0m"
        took = _ms(row.end - row.start) if row.start is not None and row.end is not None else "-"
        lines.append(f"{row.label:<{label_w}}  {row.detail:<{detail_w}}  |{bar}| {took:>{time_w}}".rstrip())
    lines.extend(_errors(node))
    return "\n".join(lines) + "\n"


def _errors(node: TaskNode) -> list[str]:
    out = []
    if node.reason and node.state in ("failed", "cancelled"):
        out.append(f"{node.id}: {node.error_code} {node.reason}".replace("  ", " "))
    for step in node.steps:
        if step.error:
            out.append(f"{node.id}/{step.id}: {step.error_code} {step.error}".replace("  ", " "))
        if step.task is not None:
            out.extend(_errors(step.task))
    return out
