"""`pyagent trace STACK TASK`: a task's waterfall from its committed record, with the sub-tasks it
delegated nested under their steps (runtime/waterfall.py lays it out)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any

from pyagent_compile.commands.local import _finish, _needs_runtime
from pyagent_compile.commands.output import add_format_options
from pyagent_compile.commands.tasks import _guarded, _unknown

if TYPE_CHECKING:
    from pyagent_compile.runtime.tasks import SwarmClient

TRACE_HELP = """\
Show a task as a waterfall: when it was submitted, how long it waited for placement and its
first step, each step's start and end on one time axis, the node that owns it, how many times
it was placed and each step's attempt; the sub-tasks it delegated (`<task>.<step>`) are nested
under their steps, recursively. Read from the swarm's committed task table, so it works for
running and finished tasks alike. Bars fit the terminal's width; piped, the output is plain ASCII.

examples:
  pyagent trace stacks/laptop/local triage-1
  pyagent trace stacks/laptop/local triage-1 --format json
"""
# Width when stdout is not a terminal and COLUMNS is not set: wide enough for readable bars.
PIPED_WIDTH = 120


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trace = sub.add_parser(
        "trace",
        help="a task's waterfall: steps, owner, attempts, delegated sub-tasks",
        description=TRACE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trace.add_argument("stack", metavar="STACK", help="a local stack folder, e.g. stacks/laptop/local")
    trace.add_argument("id", metavar="TASK", help="the task's id (`pyagent tasks STACK` lists them)")
    trace.add_argument("--timeout", type=float, default=30.0, help="seconds to find the leader (default: 30)")
    add_format_options(trace, ("text", "json"))
    trace.set_defaults(run=_needs_runtime(show_trace))


def _width() -> int:
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else PIPED_WIDTH


def _fancy(args: argparse.Namespace) -> bool:
    """Block characters and colours: on a terminal, or with `--color always`; never with NO_COLOR."""
    if args.format != "text" or args.color == "never" or os.environ.get("NO_COLOR"):
        return False
    return bool(args.color == "always" or sys.stdout.isatty())


def show_trace(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime import tasks as rt
    from pyagent_compile.runtime.waterfall import build_tree, render_waterfall, tree_to_json

    def lookup(client: SwarmClient, task_id: str) -> dict[str, Any] | None:
        view = client.describe(task_id)
        return rt.view_to_json(view) if view.found else None

    def body(client: SwarmClient) -> int:
        root = lookup(client, args.id)
        if root is None:
            return _finish(args, [_unknown(args.id, args.stack)])
        tree = build_tree(root, lambda task_id: lookup(client, task_id))
        now_ms = int(time.time() * 1000)
        text = render_waterfall(tree, _width(), now_ms, fancy=_fancy(args))
        return _finish(args, [], {"trace": tree_to_json(tree)}, text)

    return _guarded(args, body)
