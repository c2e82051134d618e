"""`pyagent run`, `pyagent tasks`, `pyagent task` and `pyagent cancel`: work on a running swarm."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from pyagent_compile.commands.local import _finish, _load, _needs_runtime
from pyagent_compile.commands.output import add_format_options
from pyagent_compile.diagnostics import Diagnostic

if TYPE_CHECKING:
    from pyagent_compile.runtime.local.stack import LocalStack
    from pyagent_compile.runtime.nodeapi import node_pb2 as pb

RUN_HELP = """\
Submit a task: one of the swarm's logic manifests with typed inputs. The inputs are checked
against the manifest's declared types first (PA703, PA704); the task is then committed by the
swarm's Raft group and placed on a node whose pool runs the manifest's core and has room.

examples:
  pyagent run stacks/laptop/local explain-failure --input command='python3 -m pytest' --wait
  pyagent run stacks/laptop/local explain-failure --input command=@cmd.txt --format json
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="submit a task (a manifest and its inputs)",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("stack", metavar="STACK", help="a local stack folder, e.g. stacks/laptop/local")
    run.add_argument("manifest", metavar="MANIFEST", help="a manifest of the spec")
    run.add_argument(
        "--input", action="append", default=[], metavar="NAME=VALUE", help="an input (repeat); @path reads a file"
    )
    run.add_argument("--id", help="the task's id (default: <manifest>-<time>-<random>); resubmitting an id is a no-op")
    run.add_argument(
        "--wait", action="store_true", help="wait until the task ends, showing its steps; exit 1 unless it succeeded"
    )
    run.add_argument(
        "--traceparent",
        default=os.environ.get("TRACEPARENT", ""),
        metavar="W3C",
        help="run the task's trace under this span (W3C traceparent; default: $TRACEPARENT, else a new trace)",
    )
    _common(run)
    run.set_defaults(run=_needs_runtime(run_task))

    tasks = sub.add_parser("tasks", help="list a swarm's tasks")
    tasks.add_argument("stack", metavar="STACK")
    _common(tasks)
    tasks.set_defaults(run=_needs_runtime(list_tasks))

    task = sub.add_parser("task", help="one task: state, steps, outputs")
    task.add_argument("stack", metavar="STACK")
    task.add_argument("id", metavar="ID")
    _common(task)
    task.set_defaults(run=_needs_runtime(show_task))

    cancel = sub.add_parser("cancel", help="cancel a task (and the sub-tasks it delegated)")
    cancel.add_argument("stack", metavar="STACK")
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--reason", default="", help="recorded with the task")
    _common(cancel)
    cancel.set_defaults(run=_needs_runtime(cancel_task))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to find the leader (default: 30)")
    add_format_options(parser, ("text", "json"))


def _guarded(args: argparse.Namespace, body: Any, stack: LocalStack | None = None) -> int:
    """`body(client)` with a client of the stack (loaded here unless the caller has it); a
    TaskError becomes its diagnostic."""
    from pyagent_compile.runtime.tasks import SwarmClient, TaskError

    if stack is None:
        stack, diags = _load(args)
        if stack is None:
            return _finish(args, diags)
    client = None
    try:
        client = SwarmClient(stack, timeout=args.timeout)
        return int(body(client))
    except TaskError as error:
        return _finish(args, [error.diagnostic])
    finally:
        if client is not None:
            client.close()


def run_task(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime import tasks as rt

    stack, diags = _load(args)
    if stack is None:
        return _finish(args, diags)
    try:
        # Everything about the inputs is checked before the swarm is asked anything.
        work = rt.load_work(stack)
        manifest = rt.find_manifest(work, args.manifest)
        inputs = rt.parse_inputs(manifest, args.input)
    except rt.TaskError as error:
        return _finish(args, [error.diagnostic])
    task_id = args.id or rt.new_task_id(manifest.name)
    command = rt.submit_command(task_id, manifest, inputs, work, args.traceparent)

    def body(client: rt.SwarmClient) -> int:
        result = client.submit(command)
        if not result.applied:
            diag = Diagnostic(
                "PA706",
                f"the swarm refused task {task_id}: {result.message} ({result.refusal})",
                help="check the manifest and inputs against the compiled stack (`pyagent compile`)",
            )
            return _finish(args, [diag])
        if not args.wait:
            view = client.describe(task_id)
            return _finish(args, [], {"task": rt.view_to_json(view)}, f"submitted {task_id}: {view.state}\n")
        final = None
        for view in client.watch(task_id):
            final = view
            if args.format == "text":
                sys.stdout.write(_progress_line(view))
                sys.stdout.flush()
        assert final is not None
        return _finish(args, _outcome_diags(final), {"task": rt.view_to_json(final)}, task_text(final))

    return _guarded(args, body, stack)


def _progress_line(view: pb.TaskView) -> str:
    steps = " ".join(f"{s.id}:{s.state}" for s in view.steps)
    owner = f" on node {view.owner}" if view.owner else ""
    reason = f" ({view.reason})" if view.reason and view.state == "queued" else ""
    return f"  {view.state}{owner}{reason}  {steps}\n"


def _outcome_diags(view: pb.TaskView) -> list[Diagnostic]:
    if view.state == "succeeded":
        return []
    code = view.error_code if view.error_code.startswith("PA7") else "PA707"
    return [Diagnostic(code, f"task {view.id} {view.state}: {view.reason}", help=f"pyagent task STACK {view.id}")]


def _duration(start: int, end: int) -> str:
    return f"{end - start} ms" if start and end else "-"


def task_text(view: pb.TaskView) -> str:
    owner = f" on node {view.owner}" if view.owner else ""
    lines = [f"task {view.id} ({view.manifest}, core {view.core}): {view.state}{owner}, placed {view.placements}x"]
    if view.reason:
        lines.append(f"  reason: {view.reason}")
    if view.trace_id:
        lines.append(f"  trace: {view.trace_id}")
    lines.append(f"  {'STEP':<16} {'KIND':<14} {'STATE':<10} {'TRY':>3}  TIME")
    for s in view.steps:
        lines.append(
            f"  {s.id:<16} {s.kind:<14} {s.state:<10} {s.attempt:>3}  {_duration(s.started_ms, s.finished_ms)}"
        )
        if s.error:
            lines.append(f"    {s.error_code}: {s.error}")
    if view.outputs_json:
        outputs = json.loads(view.outputs_json)
        lines.append("outputs:")
        for name, value in sorted(outputs.items()):
            lines.extend(_output_lines(name, value))
    return "\n".join(lines) + "\n"


def _is_trace(value: Any) -> bool:
    return isinstance(value, dict) and "command" in value and "exitCode" in value


def _output_lines(name: str, value: Any) -> list[str]:
    """A sandbox trace as its command, exit and streams; a delegated task's outputs nested; a
    report as its summary, a verdict as its result; anything else as JSON."""
    if _is_trace(value):
        command = " ".join(value["command"])
        head = f"  {name}: `{command}` exited {value['exitCode']} ({value['isolation']}, {value['elapsedMs']} ms)"
        lines = [head]
        for stream in ("stdout", "stderr"):
            text = value.get(stream) or ""
            if text:
                lines.append(f"    {stream}:")
                lines.extend("      " + line for line in text.rstrip("\n").splitlines())
        return lines
    if isinstance(value, dict) and value and all(_is_trace(v) for v in value.values()):
        return [f"  {name}:"] + [line for k, v in sorted(value.items()) for line in _output_lines("  " + k, v)]
    if isinstance(value, dict) and isinstance(value.get("summary"), str):
        # A report (analyze-trace): its one-line summary; the whole of it with --format json.
        return [f"  {name}: {value['summary']}"]
    if isinstance(value, dict) and isinstance(value.get("passed"), bool) and "checks" in value:
        # A verdict (verify): passed or not, and the checks that failed.
        failed = [c for c in value["checks"] if not c.get("passed")]
        head = f"  {name}: scenario {value.get('scenario')} {'passed' if value['passed'] else 'FAILED'}"
        return [head] + [f"    failed: {c.get('check')} (got {json.dumps(c.get('actual'))})" for c in failed]
    return [f"  {name}: " + json.dumps(value, sort_keys=True)]


def list_tasks(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime import tasks as rt

    def body(client: rt.SwarmClient) -> int:
        views = client.list()
        rows = [f"{'ID':<48} {'MANIFEST':<20} {'STATE':<10} {'NODE':>4}  REASON"]
        rows += [f"{v.id:<48} {v.manifest:<20} {v.state:<10} {v.owner or '-':>4}  {v.reason}" for v in views]
        return _finish(args, [], {"tasks": [rt.view_to_json(v) for v in views]}, "\n".join(rows) + "\n")

    return _guarded(args, body)


def _unknown(task_id: str, stack: str) -> Diagnostic:
    return Diagnostic("PA708", f"no task {task_id!r} in this swarm", help=f"pyagent tasks {stack}")


def show_task(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime import tasks as rt

    def body(client: rt.SwarmClient) -> int:
        view = client.describe(args.id)
        if not view.found:
            return _finish(args, [_unknown(args.id, args.stack)])
        return _finish(args, [], {"task": rt.view_to_json(view)}, task_text(view))

    return _guarded(args, body)


def cancel_task(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime import tasks as rt
    from pyagent_compile.runtime.nodeapi import node_pb2 as pb

    def body(client: rt.SwarmClient) -> int:
        result = client.submit(
            pb.Command(cancel_task=pb.CancelTask(id=args.id, reason=args.reason or "cancelled by the user"))
        )
        if not result.applied:
            if result.refusal == "unknown_task":
                return _finish(args, [_unknown(args.id, args.stack)])
            return _finish(args, [Diagnostic("PA706", f"cancel refused: {result.message}", help="")])
        view = client.describe(args.id)
        return _finish(args, [], {"task": rt.view_to_json(view)}, f"task {args.id}: {view.state}\n")

    return _guarded(args, body)
