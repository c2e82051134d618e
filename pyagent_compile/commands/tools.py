"""`pyagent tools lock`: list each core's MCP servers' tools and record them in the tools lock."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyagent_compile.commands.output import add_format_options, end_progress, progress, report
from pyagent_compile.commands.specs import Target, resolve_targets
from pyagent_compile.diagnostics import Diagnostic, Label
from pyagent_compile.emit import atomic_write
from pyagent_compile.load.document import format_path
from pyagent_compile.load.tools_lock import load_tools_lock, lock_display, lock_path
from pyagent_compile.model.tools_lock import build_lock, canonical_sha256, lock_changes, render_lock, tool_source
from pyagent_compile.pipeline import SpecResult, compile_spec
from pyagent_compile.resolve.mcp_servers import ServerRequest, resolve_servers

DEFAULT_TIMEOUT = 60.0

TOOLS_HELP = """\
Start (stdio) or call (http) every MCP server the spec's cores declare, list their tools
with the official MCP SDK, and write the tools lock beside the spec:
<dir>/<stem>.tools.lock.json (tools.lock.json inside a CUE package folder). It records
each server's name and version and each tool's input schema with SHA-256 hashes, as
canonical JSON, so a changed server is a reviewable diff. `pyagent compile` and
`validate` then check every `mcp` step's method and arguments against it, offline.

Needs the `tools` extra: pip install 'pyagent[tools]'.

examples:
  pyagent tools lock examples/research/swarm.yaml
  pyagent tools lock --locked        # CI: fail if the lock would change
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tools = sub.add_parser(
        "tools",
        help="lock the MCP tool servers' tools and schemas",
        description=TOOLS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = tools.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    lock = actions.add_parser(
        "lock",
        help="list every server's tools and write the tools lock beside each spec",
        description=TOOLS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lock.add_argument("specs", nargs="*", metavar="SPEC", help="spec files (default: from pyagent.toml)")
    lock.add_argument("--locked", action="store_true", help="write nothing; exit 1 (PA337) if the lock would change")
    lock.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per server, to start and list its tools (default: {DEFAULT_TIMEOUT:g})",
    )
    add_format_options(lock)
    lock.set_defaults(run=run_lock, env=None)


def run_lock(args: argparse.Namespace) -> int:
    targets, diags = resolve_targets(args.specs, None)
    lines: list[str] = []
    for target in targets:
        progress(args, f"locking tools of {target.display}")
        diags += _lock_one(args, target, lines)
    end_progress(args)
    code = report(args, diags, len(targets))
    if args.format == "text":
        sys.stderr.write("".join(lines))
    return code


def _lock_one(args: argparse.Namespace, target: Target, lines: list[str]) -> list[Diagnostic]:
    # Checks against the old lock are beside the point: it is about to be replaced.
    result = compile_spec(target.path, target.display, local=False, tools_lock=False)
    if result.base is None or any(env.swarm is None for env in result.environments):
        return [d for d in result.diagnostics if d.severity.value == "error"]
    folder = target.path if target.path.is_dir() else target.path.parent
    requests = _requests(result)
    path, shown = lock_path(target.path), lock_display(target.display, target.path)
    if not requests and not path.exists():
        lines.append(f"no tool servers in {target.display}: nothing to lock\n")
        return []
    servers, diags = resolve_servers(requests, folder, args.timeout)
    if diags:
        return diags  # a lock without some servers would silently stop checking their steps
    new = build_lock(servers)
    text = render_lock(new)
    current = _read(path)
    if current == text.encode():
        lines.append(f"up to date  {shown}\n")
        return []
    old, _ = load_tools_lock(target.path, target.display)
    changes = lock_changes(old, new) or ["the file's bytes differ from what pyagent writes"]
    if args.locked:
        return [
            Diagnostic(
                "PA337",
                f"{shown} would change: {len(changes)} change(s)",
                help="run `pyagent tools lock`, review and commit the result\n" + "\n".join(changes),
            )
        ]
    atomic_write(path, text.encode())
    tools = sum(len(s.tools) for s in new.servers)
    lines.append(f"wrote {shown}: {len(new.servers)} server(s), {tools} tool(s)\n")
    lines += [f"  {change}\n" for change in changes]
    return []


def _requests(result: SpecResult) -> list[ServerRequest]:
    """Every distinct server declaration over the spec's environments, where it is first written."""
    seen: set[tuple[str, str, str]] = set()
    requests: list[ServerRequest] = []
    for env in result.environments:
        assert env.swarm is not None
        for core_name, core in env.swarm.cores.items():
            for index, tool in enumerate(core.tools):
                key = (core_name, tool.name, canonical_sha256(tool_source(tool)))
                if key in seen:
                    continue
                seen.add(key)
                path = ("cores", core_name, "tools", index, "name")
                span = env.doc.value_span(path)
                requests.append(ServerRequest(core_name, tool, format_path(path), Label(span) if span else None))
    return requests


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
