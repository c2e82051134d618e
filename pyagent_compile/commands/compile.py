"""`pyagent compile` and `pyagent validate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyagent_compile.commands.output import add_format_options, end_progress, progress, report
from pyagent_compile.commands.specs import Target, resolve_targets
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.pipeline import SpecResult, compile_spec, display_path
from pyagent_compile.plan.local import LOCAL_ENV

COMPILE_HELP = """\
Validate swarm specs and render, for every environment, a stack folder
<out>/<swarm>/<env>/ with a Pulumi program, plan.json and plain manifests/,
and the local target <out>/<swarm>/local/ (node processes on loopback, for
`pyagent up --local`; it uses the `dev` environment's values, else the base spec).

With no SPEC, compiles every spec listed in pyagent.toml (searched from here upwards).
Files pyagent did not generate, or that were edited by hand, are never overwritten.

examples:
  pyagent compile                                  # everything pyagent.toml lists
  pyagent compile examples/research/swarm.yaml --env prod
  pyagent compile --check                          # CI: fail if stacks/ is stale
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "compile",
        help="validate specs and render their stacks",
        description=COMPILE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("specs", nargs="*", metavar="SPEC", help="spec files (default: from pyagent.toml)")
    parser.add_argument("--env", help="compile only this environment (`local`: only the local target)")
    parser.add_argument("--out", help="output folder (default: stacks, or pyagent.toml's `out`)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 and name the files that would change"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite generated files even if they were edited by hand"
    )
    add_format_options(parser)
    parser.set_defaults(run=run_compile)

    validate = sub.add_parser(
        "validate",
        help="check specs and report every problem; write nothing",
        description="Validate swarm specs: every problem, located, in one run.",
    )
    validate.add_argument("specs", nargs="+", metavar="SPEC")
    validate.add_argument("--env", help="validate only this environment")
    add_format_options(validate)
    validate.set_defaults(run=run_validate)


def compile_targets(
    args: argparse.Namespace, local: bool = True
) -> tuple[list[tuple[Target, SpecResult]], list[Diagnostic]]:
    """Compile every target; `local=False` skips the local target for commands that never use it."""
    targets, diags = resolve_targets(args.specs, getattr(args, "out", None))
    results = []
    for i, target in enumerate(targets, 1):
        progress(args, f"compiling {target.display} ({i}/{len(targets)})")
        result = compile_spec(target.path, target.display, args.env, local=local)
        results.append((target, result))
        diags += result.diagnostics
    end_progress(args)
    return results, diags


def run_validate(args: argparse.Namespace) -> int:
    results, diags = compile_targets(args)
    code = report(args, diags, len(results))
    if code == 0 and args.format == "text":
        envs = sum(len(r.environments) for _, r in results)
        sys.stderr.write(f"ok: {len(results)} spec(s), {envs} environment(s) valid\n")
    return code


def run_compile(args: argparse.Namespace) -> int:
    # Rendering and writing are imported here, not at the top: `validate` shares this module and
    # needs neither (editors and hooks run it constantly; its start-up is a benchmarked figure).
    from pyagent_compile import emit
    from pyagent_compile.render import render_stack
    from pyagent_compile.render.local import render_local

    results, diags = compile_targets(args)
    if any(not r.ok for _, r in results) or (diags and not results):
        return report(args, diags, len(results))
    lines: list[str] = []
    stacks = sum(len(r.environments) + (r.local is not None) for _, r in results)
    written = 0

    def rendering(folder: Path) -> None:
        nonlocal written
        written += 1
        progress(args, f"rendering {folder} ({written}/{stacks})")

    for target, result in results:
        for env in result.environments:
            assert env.plan is not None
            folder = target.out / env.plan.swarm / env.name
            rendering(folder)
            diags += _emit(args, folder, render_stack(env.plan), lines)
        if result.local is not None:
            folder = target.out / result.local.swarm / LOCAL_ENV
            rendering(folder)
            diags += _emit(args, folder, render_local(result.local), lines)
        swarm = next((e.plan.swarm for e in result.environments if e.plan is not None), None)
        if args.env is None and swarm is not None:
            current = {e.name for e in result.environments} | {LOCAL_ENV}
            for orphan in emit.orphan_stacks(target.out / swarm, current):
                diags += _emit(args, orphan, None, lines)
    end_progress(args)
    code = report(args, diags, len(results))
    if args.format == "text":
        sys.stderr.write("".join(lines))
    return code


def _emit(args: argparse.Namespace, folder: Path, files: dict[str, str] | None, lines: list[str]) -> list[Diagnostic]:
    """Write (or with --check, compare) one stack folder; `files` None removes an orphaned stack."""
    from pyagent_compile import emit

    diff = emit.compare(folder, files) if files is not None else emit.compare_orphan(folder)
    shown = display_path(folder)
    if args.check:
        if not diff.stale:
            lines.append(f"up to date  {shown}\n")
            return []
        changes = [
            f"{kind} {shown}/{p}"
            for kind, paths in (("added", diff.added), ("changed", diff.changed), ("removed", diff.removed))
            for p in paths
        ]
        return [
            Diagnostic(
                "PA004",
                f"{shown} is stale: {len(changes)} file(s) would change",
                help="run `pyagent compile` and commit the result\n" + "\n".join(changes),
            )
        ]
    if diff.conflicts and not args.force:
        listed = ", ".join(diff.conflicts[:5])
        return [
            Diagnostic(
                "PA005",
                f"{shown}: refusing to overwrite files pyagent did not write or that were edited by hand: {listed}",
                help="move them away, or pass --force to overwrite",
            )
        ]
    emit.write(folder, files or {}, diff)
    if files is None:
        lines.append(f"removed {shown}: its environment is no longer in the spec\n")
        return []
    objects = sum(1 for p in files if p.startswith("manifests/"))
    nodes = sum(1 for p in files if p.startswith("nodes/"))
    changed = len(diff.added) + len(diff.changed) + len(diff.removed)
    state = f"{changed} file(s) changed" if changed else "unchanged"
    what = f"{nodes} local node(s)" if nodes else f"{objects} objects"
    lines.append(f"wrote {shown}: {what}, {state}\n")
    return []
