"""`pyagent diff BASE HEAD [SPEC]`: what a spec change does to the infrastructure, offline."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from pyagent_compile.commands.output import report
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.pipeline import SpecResult, compile_spec, display_path
from pyagent_compile.plan.diff import EnvironmentDiff, diff_plans
from pyagent_compile.render import diff as render

DIFF_HELP = """\
Compile two versions of a spec offline and print, per environment, a summary (added,
changed, removed objects per kind) and then only what changed. Secret values are masked.

  pyagent diff old/swarm.yaml new/swarm.yaml           two spec files
  pyagent diff origin/main HEAD examples/x/swarm.yaml  two git revisions of one spec
  pyagent diff HEAD . examples/x/swarm.yaml            HEAD against the working tree

--format markdown gives a compact pull-request comment, --format json a document for bots.
Exit codes: 0 the diff was printed, 1 a version does not compile, 2 usage or unreadable input.
"""
WORKTREE = "."


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "diff",
        help="per-resource diff of two versions of a spec (for PR review)",
        description=DIFF_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("base", metavar="BASE", help="a spec file, or a git revision when SPEC is given")
    parser.add_argument("head", metavar="HEAD", help="a spec file, or a git revision (`.`: working tree)")
    parser.add_argument("spec", nargs="?", metavar="SPEC", help="the spec path, when BASE and HEAD are revisions")
    parser.add_argument("--env", help="only this environment")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="never", help=argparse.SUPPRESS)
    parser.set_defaults(run=run_diff)


def _git(args: list[str], cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def checkout(rev: str, spec: Path, dest: Path) -> tuple[Path, str] | Diagnostic:
    """The spec's folder as of `rev`, written under dest; (spec path there, display name)."""
    folder = spec.resolve().parent
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], folder).strip())
        rel = folder.relative_to(top).as_posix()
        files = _git(["ls-tree", "-r", "--name-only", rev, "--", rel or "."], top).splitlines()
        for name in files:
            blob = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=top, capture_output=True, check=True).stdout
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else str(exc)
        return Diagnostic("PA595", f"cannot read {display_path(spec)} at revision {rev!r}: {detail}")
    checked_out = dest / rel / spec.name
    if not checked_out.is_file():
        return Diagnostic("PA595", f"revision {rev!r} has no {display_path(spec)}")
    return checked_out, f"{rev}:{display_path(spec)}"


def run_diff(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="pyagent-diff-") as tmp:
        sides: list[tuple[Path, str]] = []
        for index, ref in enumerate((args.base, args.head)):
            if args.spec is None:
                sides.append((Path(ref), display_path(Path(ref))))
            elif ref == WORKTREE:
                sides.append((Path(args.spec), display_path(Path(args.spec))))
            else:
                got = checkout(ref, Path(args.spec), Path(tmp) / str(index))
                if isinstance(got, Diagnostic):
                    return report(args, [got], 1)
                sides.append(got)
        results = [compile_spec(path, display, args.env, local=False) for path, display in sides]
        diags = [d for r in results for d in r.diagnostics]
        if any(not r.ok for r in results):
            return report(args, diags, 2)
        title = f"{sides[0][1]} -> {sides[1][1]}"
        diffs = environment_diffs(results[0], results[1], ("a", "b"))
    renderer = {"text": render.render_text, "markdown": render.render_markdown, "json": render.render_json}
    sys.stdout.write(renderer[args.format](diffs, title))
    return 0


def environment_diffs(base: SpecResult, head: SpecResult, labels: tuple[str, str]) -> list[EnvironmentDiff]:
    old = {e.name: e.plan for e in base.environments}
    new = {e.name: e.plan for e in head.environments}
    names = [e.name for e in head.environments] + [n for n in old if n not in new]
    return [diff_plans(name, old.get(name), new.get(name), labels) for name in names]
