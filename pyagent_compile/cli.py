"""The `pyagent` command line. Each command lives in pyagent_compile/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pyagent_compile import __version__

DESCRIPTION = """\
pyagent compiles declarative swarm specs (YAML) into deterministic Pulumi stacks and plain
Kubernetes manifests for pyagent's Rust node image.

  pyagent compile                 compile every spec in pyagent.toml into stacks/
  pyagent validate SPEC           report every problem in a spec, located to file:line:col
  pyagent policy check SPEC       sovereignty, zero-trust and hygiene policies on the plan
  pyagent diff BASE HEAD [SPEC]   per-resource diff of two versions of a spec (PR review)
  pyagent explain PA204           what an error code means
  pyagent schema                  the JSON Schema of the spec, for editor completion
  pyagent up --local STACK        start a swarm's nodes on loopback (STACK: stacks/<swarm>/local)
  pyagent status STACK            each node's pid, Raft role, term, leader and commit index
  pyagent down STACK [--purge]    stop them (data kept unless --purge)
  pyagent run STACK MANIFEST --input k=v [--wait]
                                  run a logic manifest on the swarm as a task
  pyagent tasks STACK | task STACK ID | cancel STACK ID
                                  list, show or cancel tasks
  pyagent trace STACK TASK        a task's waterfall: steps, owner, attempts, delegated sub-tasks
  pyagent dashboard STACK         a live web page of the swarm: map, tasks, traces, graphs
  pyagent scenario run [SPEC]     run a spec's scenarios on a headless local swarm (CI gate)
  pyagent tools lock [SPEC]       list the MCP servers' tools into the tools lock beside the spec
                                  (compile then checks mcp steps against it)

Exit codes: 0 ok, 1 the spec is invalid (or stacks are stale), 2 usage or unreadable input.
"""

# The modules under pyagent_compile/commands/, each with a `register(sub)` that adds its commands.
# A new command: its module's name here, each of its command words in COMMANDS below, and no
# import of it at the top of this file (tests/test_cli.py checks all three).
COMMAND_MODULES = ("compile", "info", "policy", "diff", "local", "tasks", "trace", "dashboard", "tools", "scenario")
# Which module registers each command word. Start-up is a user-facing cost (editors and
# pre-commit hooks run the CLI constantly), so a command imports only its own module, and
# `--version` none: the pipeline, pydantic and jinja2 load only for the commands that use them.
# A command word missing here still works: every module is then imported.
COMMANDS = {
    "compile": "compile",
    "validate": "compile",
    "schema": "info",
    "explain": "info",
    "policy": "policy",
    "diff": "diff",
    "up": "local",
    "status": "local",
    "down": "local",
    "run": "tasks",
    "tasks": "tasks",
    "task": "tasks",
    "cancel": "tasks",
    "trace": "trace",
    "dashboard": "dashboard",
    "tools": "tools",
    "scenario": "scenario",
}


def _command_word(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option: the command, when there is one (no top-level
    option takes a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: with only the modules its command needs registered. Without
    `argv`, or for a word that is no known command (so that argparse lists them all), every module."""
    parser = argparse.ArgumentParser(
        prog="pyagent", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"pyagent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: Sequence[str] = COMMAND_MODULES
    if argv is not None:
        word = _command_word(argv)
        if word is None and not {"-h", "--help"} & set(argv):
            # `pyagent --version`, or `pyagent` alone (the usage, from DESCRIPTION): no command.
            modules = ()
        elif word in COMMANDS:
            modules = (COMMANDS[word],)
    for name in modules:
        importlib.import_module(f"pyagent_compile.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
