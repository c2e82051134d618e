"""`pyagent up --local`, `pyagent status` and `pyagent down`: the local target's processes."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyagent_compile.commands.output import add_format_options, end_progress, progress, use_colour
from pyagent_compile.diagnostics import Diagnostic, Diagnostics, Severity
from pyagent_compile.diagnostics.codes import exit_code_for
from pyagent_compile.diagnostics.machine import render_json
from pyagent_compile.diagnostics.sources import SourceCache
from pyagent_compile.diagnostics.text import render_text

# The runtime (gRPC, cryptography, process control) is imported by the commands that use it, so
# the other commands, `pyagent compile` first, start fast and run without those packages.
if TYPE_CHECKING:
    from pyagent_compile.runtime.local.stack import LocalStack
    from pyagent_compile.runtime.local.swarm import NodeView

UNSTARTABLE = "check that the daemon binary runs on this machine, or point $PYAGENT_NODE_BIN at one that does"

UP_HELP = """\
Start the local target of a swarm: one pyagent-node process per node on loopback.

Finds the daemon ($PYAGENT_NODE_BIN, else native/target/host/release/pyagent-node, else
builds it with cargo for this machine's CPU), creates a key per node (`pyagent-node keygen`), starts the nodes detached
(pid files and logs in <stack>/data/<node>/), waits until a leader is elected, then prints
the status table. Nodes that already run are left alone: after a crash, `up` starts just the
nodes that are down, and they rejoin with their data.

examples:
  pyagent compile && pyagent up --local stacks/laptop/local
  pyagent status stacks/laptop/local
  pyagent down stacks/laptop/local --purge
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up",
        help="start a swarm's nodes (--local: processes on loopback)",
        description=UP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument(
        "--local",
        action="store_true",
        required=True,
        help="run the local target (the only target `up` runs; Kubernetes stacks deploy with Pulumi)",
    )
    up.add_argument("stack", metavar="STACK", help="a local stack folder, e.g. stacks/laptop/local")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a leader (default: 60)")
    add_format_options(up, ("text", "json"))
    up.set_defaults(run=_needs_runtime(run_up))

    status = sub.add_parser(
        "status",
        help="show each node of a local swarm: pid, role, term, leader, commit index",
        description="Ask every node of a local swarm for its Raft view. Exit 0 when every "
        "node runs and a majority agrees on a leader, else 1.",
    )
    status.add_argument("stack", metavar="STACK")
    add_format_options(status, ("text", "json"))
    status.set_defaults(run=_needs_runtime(run_status))

    down = sub.add_parser(
        "down",
        help="stop a local swarm (SIGTERM, then SIGKILL after --timeout)",
        description="Stop every node of a local swarm. Data is kept unless --purge.",
    )
    down.add_argument("stack", metavar="STACK")
    down.add_argument("--timeout", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL (default: 10)")
    down.add_argument("--purge", action="store_true", help="also delete the data directories (keys, Raft logs)")
    add_format_options(down, ("text", "json"))
    down.set_defaults(run=_needs_runtime(run_down))


# What the runtime imports beyond the compiler's own dependencies (pyproject's `local` extra).
RUNTIME_MODULES = ("grpc", "google.protobuf", "cryptography", "prometheus_client", "pyagent_compile._native")


def _needs_runtime(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`run`, or PA619 naming what is missing when the runtime's packages are not installed."""

    @functools.wraps(run)
    def checked(args: argparse.Namespace) -> int:
        missing = [m for m in RUNTIME_MODULES if not _importable(m)]
        if not missing:
            return run(args)
        diag = Diagnostic(
            "PA619",
            f"`pyagent {args.command}` needs the local target's packages; missing: {', '.join(missing)}",
            help="pip install 'pyagent[local]'",
        )
        return _finish(args, [diag])

    return checked


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def _finish(
    args: argparse.Namespace, diags: list[Diagnostic], payload: dict[str, object] | None = None, text: str = ""
) -> int:
    """One JSON document (the payload and the diagnostics) or text on stdout and problems on stderr."""
    if args.format == "json":
        collected = Diagnostics(list(diags))
        document = json.loads(render_json(collected.sorted(), collected.errors, collected.warnings))
        document.update(payload or {})
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return exit_code_for([d.code for d in diags if d.severity.value == "error"])
    sys.stdout.write(text)
    collected = Diagnostics(list(diags))
    if diags:
        sys.stderr.write(render_text(collected.sorted(), SourceCache(Path.cwd()), use_colour(args)) + "\n")
        sys.stderr.write(f"{collected.errors} error(s), {collected.warnings} warning(s)\n")
    return exit_code_for([d.code for d in diags if d.severity.value == "error"])


def _load(args: argparse.Namespace) -> tuple[LocalStack | None, list[Diagnostic]]:
    from pyagent_compile.runtime.local.stack import load_stack

    stack, diag = load_stack(Path(args.stack))
    return stack, [diag] if diag else []


def status_table(views: list[NodeView], leader: int | None, lagging: dict[str, int] | None = None) -> str:
    header = ("NODE", "ID", "PID", "ROLE", "TERM", "LEADER", "COMMIT", "MESH")
    rows = [header] + [
        (
            v.name,
            str(v.id),
            str(v.pid or "-"),
            v.role,
            _opt(v.term),
            _opt(v.leader_id or None),
            _opt(v.commit_index),
            _opt(v.mesh_peers),
        )
        for v in views
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    healthy = leader is not None and all(v.term is not None for v in views)
    lines.append(f"leader: {leader}" if leader else "leader: none")
    problems = degraded(views, lagging or {})
    if healthy and problems:
        lines.append(f"swarm DEGRADED: {'; '.join(problems)}")
    else:
        lines.append("swarm healthy" if healthy else "swarm NOT healthy")
    return "\n".join(lines) + "\n"


def degraded(views: list[NodeView], lagging: dict[str, int]) -> list[str]:
    """What keeps a swarm that has a leader from being whole: nodes not catching up, and nodes
    whose /healthz says why they are not ready (recovering from damage, behind, stuck)."""
    problems = [f"{name} {entries} entries behind, not catching up" for name, entries in lagging.items()]
    problems += [f"{v.name} {v.unhealthy}" for v in views if v.unhealthy and v.name not in lagging]
    return problems


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _status_payload(
    stack: LocalStack, views: list[NodeView], leader: int | None, lagging: dict[str, int] | None = None
) -> dict[str, object]:
    nodes = [v.to_json() for v in views]
    return {"swarm": stack.swarm, "leader": leader, "nodes": nodes, "behind": dict(lagging or {})}


def _status_text(
    stack: LocalStack, views: list[NodeView], leader: int | None, lagging: dict[str, int] | None = None
) -> str:
    return f"swarm {stack.swarm} ({stack.folder})\n" + status_table(views, leader, lagging)


def _view_diags(views: list[NodeView]) -> list[Diagnostic]:
    return [
        Diagnostic("PA617", f"node {v.name} is {v.role}" + (f" (pid {v.pid})" if v.pid else ""))
        for v in views
        if v.term is None
    ]


def run_up(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime.local.daemon import find_daemon
    from pyagent_compile.runtime.local.processes import check_ports, log_tail, node_pid, prepare, start_node, stop_nodes
    from pyagent_compile.runtime.local.swarm import settle, wait_for_leader

    stack, diags = _load(args)
    if stack is None:
        return _finish(args, diags)
    down = tuple(n for n in stack.nodes if node_pid(n) is None)
    if not down:
        return _finish(
            args,
            [
                Diagnostic(
                    "PA616",
                    f"all {len(stack.nodes)} node(s) of {stack.swarm} are already running",
                    help=f"pyagent status {args.stack}  /  pyagent down {args.stack}",
                )
            ],
        )
    # The nodes that run are left alone: only those that are down are started (a node that
    # crashed, or was stopped by hand, rejoins the swarm with its data).
    diags = check_ports(stack, down)
    if diags:
        return _finish(args, diags)

    def say(message: str) -> None:
        if args.format == "text":
            sys.stderr.write(message + "\n")

    daemon, diag = find_daemon(report=say)
    if daemon is None:
        return _finish(args, [diag] if diag else [])
    progress(args, f"generating keys for {len(stack.nodes)} node(s)")
    diags = prepare(stack, daemon)
    if diags:
        end_progress(args)
        return _finish(args, diags)
    processes = {}
    for node in down:
        progress(args, f"starting {node.name}")
        try:
            processes[node.name] = start_node(stack, node, daemon)
        except OSError as e:
            end_progress(args)
            stop_nodes(down, timeout=5.0)
            return _finish(args, [Diagnostic("PA611", f"cannot start {daemon}: {e.strerror}", help=UNSTARTABLE)])

    def dead() -> str | None:
        return next((name for name, p in processes.items() if p.poll() is not None), None)

    leader, views = wait_for_leader(stack, args.timeout, lambda m: progress(args, m), dead)
    if leader is not None and dead() is None:
        views = settle(stack, views)
    end_progress(args)
    exited = dead()
    if exited is not None:
        node = stack.node(exited)
        code = processes[exited].returncode
        stop_nodes(down, timeout=5.0)
        others = "the nodes started with it were stopped" + (
            ", those already running left alone" if len(down) < len(stack.nodes) else ""
        )
        return _finish(
            args,
            [
                Diagnostic(
                    "PA614",
                    f"node {exited} exited with code {code} while starting; {others}",
                    help=f"last lines of {node.log_file}:\n{log_tail(node)}",
                )
            ],
        )
    diags = []
    if leader is None:
        diags.append(
            Diagnostic(
                "PA615",
                f"no leader elected within {args.timeout:g}s; the nodes keep running",
                help=f"logs: {stack.data_root}/<node>/node.log; stop with `pyagent down {args.stack}`",
            )
        )
    return _finish(args, diags, _status_payload(stack, views, leader), _status_text(stack, views, leader))


def run_status(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime.local.swarm import CATCH_UP_SECONDS, agreed_leader, lagging_nodes, swarm_view

    stack, diags = _load(args)
    if stack is None:
        return _finish(args, diags)
    views = swarm_view(stack)
    leader = agreed_leader(stack, views)
    diags = _view_diags(views)
    if leader is None and not diags:
        diags.append(Diagnostic("PA615", "the running nodes do not agree on a leader"))
    lagging = lagging_nodes(stack, views, leader) if leader is not None else {}
    diags += [
        Diagnostic(
            "PA620",
            f"node {name} is {entries} entries behind the leader and did not catch up within {CATCH_UP_SECONDS:g}s",
            help=f"its log: {stack.node(name).log_file}",
        )
        for name, entries in lagging.items()
    ]
    diags += [
        Diagnostic(
            "PA621",
            f"node {v.name} is not ready: {v.unhealthy}",
            severity=Severity.WARNING,
            help=f"its /healthz says the same; its log: {stack.node(v.name).log_file}",
        )
        for v in views
        if v.unhealthy and v.name not in lagging
    ]
    payload = _status_payload(stack, views, leader, lagging)
    return _finish(args, diags, payload, _status_text(stack, views, leader, lagging))


def release_workspaces(stack: LocalStack) -> None:
    """Task workspaces the stopped nodes left (a node killed mid-task cannot release its own):
    `$TMPDIR/pyagent-work/<swarm>-<node id>/<task>`, a tmpfs where the daemon could mount one
    (docs/tasks.md). The step captures beside them stay."""
    import subprocess
    import tempfile

    for node in stack.nodes:
        root = Path(tempfile.gettempdir()) / "pyagent-work" / f"{stack.swarm}-{node.id}"
        for workspace in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else ():
            if workspace.is_mount():
                subprocess.run(["umount", "--lazy", str(workspace)], capture_output=True, check=False)
            shutil.rmtree(workspace, ignore_errors=True)


def run_down(args: argparse.Namespace) -> int:
    from pyagent_compile.runtime.local.processes import stop_nodes

    stack, diags = _load(args)
    if stack is None:
        return _finish(args, diags)
    results, diags = stop_nodes(stack.nodes, args.timeout, lambda m: progress(args, m))
    end_progress(args)
    stopped = [r for r in results if r.pid is not None]
    if not diags:  # a node that would not stop may still be using its workspaces
        release_workspaces(stack)
    if args.purge and stack.data_root.is_dir():
        shutil.rmtree(stack.data_root)
    payload: dict[str, object] = {
        "swarm": stack.swarm,
        "stopped": [r.node for r in stopped],
        "killed": [r.node for r in stopped if r.killed],
        "purged": bool(args.purge),
    }
    what = f"stopped {len(stopped)} node(s) of {stack.swarm}" if stopped else f"{stack.swarm}: no node was running"
    kept = "data deleted" if args.purge else f"data kept in {stack.data_root}"
    return _finish(args, diags, payload, f"{what}; {kept}\n")


__all__ = ["register"]
