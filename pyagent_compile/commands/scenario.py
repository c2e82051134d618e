"""`pyagent scenario run`: every scenario of a spec on a headless local swarm (docs/scenarios.md)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pyagent_compile import emit
from pyagent_compile.commands.output import add_format_options, add_output_files_option, end_progress, progress, report
from pyagent_compile.commands.specs import Target, resolve_targets
from pyagent_compile.diagnostics import Diagnostic, Diagnostics, Label, Span
from pyagent_compile.diagnostics.machine import render_json
from pyagent_compile.load.scenario import load_scenario
from pyagent_compile.pipeline import SpecResult, compile_spec
from pyagent_compile.plan.local import LOCAL_ENV

if TYPE_CHECKING:
    from pyagent_compile.runtime.scenarios import Outcome

SCENARIO_HELP = """\
Run every scenario of a spec on a headless local swarm and report like `pyagent policy check`,
so CI can gate a deploy on it. A spec's scenarios: each file a `verify` step names, plus every
scenarios/*.yaml (and .yml) beside the spec.

For each spec: compiles its local target into a temporary folder (the scenarios checked as
`pyagent validate` checks them, PA340-PA349), starts its nodes as `pyagent up --local` does,
submits one task per scenario (a single `verify` step: the scenario's manifest runs as its sub-task
on the scenario's inputs and stubs, and its `expect` is checked), reads each verdict, and stops and
deletes the swarm, also on Ctrl-C.

Exit codes: 0 every scenario passed, 1 a scenario failed (or a spec or scenario is invalid),
2 usage, unreadable input, no scenario, or a swarm that would not start.

examples:
  pyagent scenario run examples/laptop/swarm.yaml
  pyagent scenario run --format junit --output sarif=scenarios.sarif > scenarios.xml
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "scenario",
        help="run a spec's scenarios on a headless local swarm",
        description=SCENARIO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="scenario_command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run", help="run every scenario of each spec", description=SCENARIO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    run.add_argument("specs", nargs="*", metavar="SPEC", help="spec files (default: from pyagent.toml)")
    run.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds each scenario may take (its verify step's timeout; default: 300)",
    )
    run.add_argument(
        "--start-timeout", type=float, default=60.0, help="seconds to wait for the swarm's leader (default: 60)"
    )
    add_format_options(run)
    add_output_files_option(run)
    run.set_defaults(run=run_scenarios, env=LOCAL_ENV)


def run_scenarios(args: argparse.Namespace) -> int:
    from pyagent_compile.commands.local import RUNTIME_MODULES, _importable

    targets, diags = resolve_targets(args.specs, None)
    if not targets:
        return report(args, diags, 0)
    missing = [m for m in RUNTIME_MODULES if not _importable(m)]
    if missing:
        diag = Diagnostic(
            "PA619",
            f"`pyagent scenario run` needs the local target's packages; missing: {', '.join(missing)}",
            help="pip install 'pyagent[local]'",
        )
        return report(args, [diag], len(targets))
    outcomes: list[tuple[Target, Outcome]] = []
    for target in targets:
        found, problems = _run_spec(args, target)
        outcomes += [(target, o) for o in found]
        diags += problems
    return _report(args, targets, outcomes, diags)


def _compile(target: Target) -> tuple[SpecResult, list[str]]:
    """The spec's local target with its scenarios: those of verify steps, then scenarios/*.yaml."""
    from pyagent_compile.runtime.scenarios import discover

    first = compile_spec(target.path, target.display, LOCAL_ENV)
    referenced = _referenced(first)
    spec_dir = target.path if target.path.is_dir() else target.path.parent
    extra = discover(spec_dir, referenced)
    if not extra or first.base is None:
        return first, sorted(referenced)
    return compile_spec(target.path, target.display, LOCAL_ENV, extra_scenarios=extra), sorted({*referenced, *extra})


def _referenced(result: SpecResult) -> list[str]:
    work = result.local.work if result.local is not None else None
    if work is not None:
        return list(work.scenarios)
    # The spec did not compile: still name its verify steps' files, for the report.
    data = result.base.data if result.base is not None else None
    manifests = data.get("manifests") if isinstance(data, dict) else None
    found = []
    for manifest in (manifests or {}).values() if isinstance(manifests, dict) else ():
        for step in manifest.get("steps") or [] if isinstance(manifest, dict) else []:
            if isinstance(step, dict) and step.get("kind") == "verify" and isinstance(step.get("scenario"), str):
                found.append(step["scenario"])
    return found


def _run_spec(args: argparse.Namespace, target: Target) -> tuple[list[Outcome], list[Diagnostic]]:
    from pyagent_compile.commands.local import release_workspaces
    from pyagent_compile.render.local import render_local
    from pyagent_compile.runtime.local.stack import load_stack
    from pyagent_compile.runtime.scenarios import SwarmNotStarted, headless_swarm, run_scenario
    from pyagent_compile.runtime.tasks import SwarmClient, TaskError

    progress(args, f"compiling {target.display}")
    result, keys = _compile(target)
    end_progress(args)
    if not result.ok:
        return [], result.diagnostics
    if result.local is None:  # too large for one machine (the PA601 warning says why)
        return [], [*result.diagnostics, _no_local_target(target)]
    diags = list(result.diagnostics)  # warnings
    work = result.local.work
    if not work.scenarios:
        return [], [*diags, _no_scenarios(target, keys)]
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="pyagent-scenarios-") as tmp:
        folder = Path(tmp) / result.local.swarm / LOCAL_ENV
        files = render_local(result.local)
        emit.write(folder, files, emit.compare(folder, files))
        stack, diag = load_stack(folder)
        if stack is None:
            return [], [*diags, *([diag] if diag else [])]
        try:
            say = lambda message: progress(args, message)  # noqa: E731
            with headless_swarm(stack, args.start_timeout, say, release_workspaces):
                client = SwarmClient(stack, timeout=args.start_timeout)
                try:
                    for key in sorted(work.scenarios):
                        progress(args, f"scenario {work.scenarios[key].name}")
                        outcome = run_scenario(client, work, key, args.timeout)
                        end_progress(args)
                        _say_outcome(args, target, outcome)
                        outcomes.append(outcome)
                finally:
                    client.close()
        except SwarmNotStarted as failure:
            end_progress(args)
            diags += [_as_start_failure(d, target) for d in failure.diagnostics]
        except TaskError as error:
            end_progress(args)
            diags.append(error.diagnostic)
    return outcomes, diags


def _no_scenarios(target: Target, keys: list[str]) -> Diagnostic:
    return Diagnostic(
        "PA651",
        f"{target.display} has no scenarios" + (f" ({', '.join(keys)} did not load)" if keys else ""),
        primary=Label(Span(target.display, 1, 1)),
        help="name a scenario file in a `verify` step, or put it in scenarios/ beside the spec (docs/scenarios.md)",
    )


def _no_local_target(target: Target) -> Diagnostic:
    return Diagnostic(
        "PA654",
        f"{target.display} has no local target to run its scenarios on",
        primary=Label(Span(target.display, 1, 1)),
        help="lower `replicas` in the `dev` environment's overrides (PA601)",
    )


def _as_start_failure(diag: Diagnostic, target: Target) -> Diagnostic:
    if diag.code == "PA654":
        return diag
    return Diagnostic(
        "PA654",
        f"the local swarm of {target.display} did not start: {diag.code}: {diag.message}",
        help=diag.help,
    )


def _say_outcome(args: argparse.Namespace, target: Target, outcome: Outcome) -> None:
    if args.format != "text":
        return
    word = "PASS" if outcome.passed else "FAIL"
    sys.stdout.write(f"{word}  {outcome.name}  ({target.display}, {outcome.seconds:.1f} s, task {outcome.task})\n")
    for check in outcome.checks:
        mark = "ok  " if check.passed else "FAIL"
        detail = "" if check.passed else f": expected {_short(check.expected)}, got {_short(check.actual)}"
        sys.stdout.write(f"      {mark} {check.check}{detail}\n")
    if outcome.error_code:
        sys.stdout.write(f"      {outcome.error_code}: {outcome.error}\n")
    sys.stdout.flush()


def _short(value: object, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scenario_label(target: Target, name: str, key: str) -> str:
    """`<scenario name> [<spec>]`, how a passed scenario is listed (JUnit test cases)."""
    return f"scenario {name} ({key}) [{target.display}]"


def failure_diagnostic(target: Target, outcome: Outcome) -> Diagnostic:
    """A failed scenario as one PA650, located on the scenario file's `metadata.name`."""
    spec_dir_display = target.display if target.path.is_dir() else target.display.rpartition("/")[0]
    display = f"{spec_dir_display}/{outcome.key}" if spec_dir_display else outcome.key
    spec_dir = target.path if target.path.is_dir() else target.path.parent
    loaded = load_scenario(spec_dir / outcome.key, display)
    span = loaded.doc.value_span(("metadata", "name")) if loaded.doc is not None else None
    failed = [c for c in outcome.checks if not c.passed]
    parts = [f"{c.check}: expected {_short(c.expected)}, got {_short(c.actual)}" for c in failed]
    if outcome.error_code:
        parts.append(f"{outcome.error_code}: {outcome.error}")
    message = f"scenario {outcome.name} failed: " + ("; ".join(parts) or "its verdict says it did not pass")
    task = outcome.child or outcome.task
    return Diagnostic(
        "PA650",
        message,
        path=outcome.key,
        primary=Label(span or Span(display, 1, 1)),
        help=f"its task was {task}; `pyagent explain {outcome.error_code}`"
        if outcome.error_code
        else f"its task was {task}",
    )


def _report(
    args: argparse.Namespace, targets: list[Target], outcomes: list[tuple[Target, Outcome]], diags: list[Diagnostic]
) -> int:
    passed = [scenario_label(t, o.name, o.key) for t, o in outcomes if o.passed]
    diags = diags + [failure_diagnostic(t, o) for t, o in outcomes if not o.passed]
    if args.format == "json":
        # The verdicts beside the diagnostics, in the one document; the other formats are policy check's.
        for fmt, path in args.output:
            report_to_file(fmt, path, diags, passed)
        collected = Diagnostics(list(diags))
        document = json.loads(render_json(collected.sorted(), collected.errors, collected.warnings))
        document["scenarios"] = [o.to_json() | {"spec": t.display} for t, o in outcomes]
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return _exit_code(diags)
    code = report(args, diags, len(targets), passed)
    if code == 0 and args.format == "text":
        sys.stderr.write(f"ok: {len(passed)} scenario(s) passed\n")
    return code


def report_to_file(fmt: str, path: Path, diags: list[Diagnostic], passed: list[str]) -> None:
    from pyagent_compile.commands.output import render

    collected = Diagnostics(list(diags))
    path.write_text(render(fmt, collected.sorted(), collected, passed), encoding="utf-8")


def _exit_code(diags: list[Diagnostic]) -> int:
    from pyagent_compile.diagnostics.codes import exit_code_for

    return exit_code_for([d.code for d in diags if d.severity.value == "error"])


__all__ = ["failure_diagnostic", "register", "run_scenarios", "scenario_label"]
