"""The `pyagent` command line. Each command lives in pyagent_compile/commands/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pyagent_compile import __version__
from pyagent_compile.commands import compile as compile_cmd
from pyagent_compile.commands import diff, info, policy
from pyagent_compile.commands import local as local_cmd
from pyagent_compile.commands import tasks as tasks_cmd

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

Exit codes: 0 ok, 1 the spec is invalid (or stacks are stale), 2 usage or unreadable input.
"""

COMMAND_MODULES = (compile_cmd, info, policy, diff, local_cmd, tasks_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyagent", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"pyagent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
