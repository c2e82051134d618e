"""The layout of `pyagent trace` on task views recorded from a real local swarm
(tests/data/trace/views.json: `pyagent task --format json` of a triage task with its delegated
sub-task, a failed task and a running one; inputs and outputs dropped, the trace does not show
them). tests/integration/test_observe.py runs the command against a live swarm."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pyagent_compile.runtime.waterfall import build_tree, render_waterfall, tree_to_json

VIEWS: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "trace" / "views.json").read_text())


def tree(task_id: str) -> Any:
    return build_tree(VIEWS[task_id], VIEWS.get)


def bar_rows(text: str) -> list[str]:
    return [line for line in text.splitlines()[2:] if "|" in line]


def bar(line: str) -> str:
    return line.split("|")[1]


def test_the_delegated_sub_task_is_nested_under_its_step() -> None:
    root = tree("t1")
    (outline,) = [s for s in root.steps if s.kind == "delegate"]
    assert outline.task is not None and outline.task.id == "t1.outline"
    assert [s.id for s in outline.task.steps] == ["list"]
    assert all(s.task is None for s in root.steps if s.kind != "delegate")


def test_a_missing_sub_task_leaves_the_step_without_one() -> None:
    root = build_tree(VIEWS["t1"], lambda _id: None)
    assert all(s.task is None for s in root.steps)


@pytest.mark.parametrize("width", [60, 100, 200])
def test_bars_are_aligned_and_fill_the_width(width: int) -> None:
    text = render_waterfall(tree("t1"), width, now_ms=0)
    rows = bar_rows(text)
    assert len({line.index("|") for line in text.splitlines()[1:]}) == 1
    # One column short of the width: a full last column wraps in some terminals.
    assert max(len(line) for line in text.splitlines()[1:]) <= max(width - 1, 90)
    # The root spans the whole axis; the sub-task lies within its delegate step.
    assert "#" * len(bar(rows[0])) == bar(rows[0])
    delegate = next(r for r in rows if r.lstrip().startswith("outline "))
    child = next(r for r in rows if "task t1.outline" in r)
    assert bar(child).index("#") >= bar(delegate).index("#")
    assert bar(child).rindex("#") <= bar(delegate).rindex("#")


def test_rows_follow_the_record_in_order_with_indentation() -> None:
    # A label: its indentation and words with single spaces; two spaces end it.
    rows = bar_rows(render_waterfall(tree("t1"), 120, 0))
    labels = [m.group(1) for r in rows if (m := re.match(r"^( *\S+(?: \S+)*)", r))]
    stripped = [label.strip() for label in labels]
    assert stripped == ["task t1", "queued", "reproduce", "analyse", "outline", "task t1.outline", "queued", "list"]
    depth = [len(label) - len(label.lstrip()) for label in labels]
    assert depth == [0, 2, 2, 2, 2, 4, 6, 6]


def test_plain_output_is_ascii_and_fancy_output_is_coloured() -> None:
    plain = render_waterfall(tree("t1"), 100, 0)
    assert plain.isascii() and "\x1b[" not in plain
    fancy = render_waterfall(tree("t1"), 100, 0, fancy=True)
    assert "█" in fancy and "\x1b[32m" in fancy


def test_a_failed_step_shows_its_code_and_error() -> None:
    text = render_waterfall(tree("think-1"), 120, 0)
    assert text.splitlines()[0].startswith("trace think-1 (think, core coder): FAILED")
    assert "cort, FAILED PA721" in text
    assert any(line.startswith("think-1/reason: PA721 ") for line in text.splitlines())


def test_a_running_step_reaches_now() -> None:
    view = VIEWS["hang-1"]
    started = view["steps"][0]["startedMs"]
    text = render_waterfall(tree("hang-1"), 100, now_ms=started + 60_000)
    wait = next(r for r in bar_rows(text) if r.lstrip().startswith("wait "))
    assert "running" in wait and bar(wait).rstrip().endswith("#") and bar(wait)[-1] == "#"
    assert "60.00 s" in wait


def test_json_has_the_same_tree_with_offsets_from_submission() -> None:
    document = tree_to_json(tree("t1"))
    assert document["submittedOffsetMs"] == 0
    child = document["steps"][2]["task"]
    assert child["id"] == "t1.outline" and child["steps"][0]["task"] is None
    assert child["submittedOffsetMs"] == VIEWS["t1.outline"]["submittedMs"] - VIEWS["t1"]["submittedMs"]
    pending = tree_to_json(tree("hang-1"))
    assert pending["finishedMs"] == 0 and pending["finishedOffsetMs"] is None
