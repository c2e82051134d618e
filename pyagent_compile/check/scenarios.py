"""Scenario files against the spec (PA340-PA349; docs/scenarios.md).

A scenario is checked where it was written: problems are located in the scenario file, with
the `verify` step that names it as the related place. A scenario must be able to run without the
outside world, so every `mcp` step its task can reach needs a tool stub, and `cort` steps need
model answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic, Label, Severity
from pyagent_compile.diagnostics.codes import CODES
from pyagent_compile.load.document import PathT, format_path
from pyagent_compile.load.scenario import LoadedScenario
from pyagent_compile.model.scenario import TEXT_TYPES, Scenario
from pyagent_compile.model.spec import CortStep, DelegateStep, Manifest, McpStep, Swarm, VerifyStep
from pyagent_compile.suggest import did_you_mean


def check_scenarios(ctx: CheckContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for key, loaded in sorted(ctx.scenarios.items()):
        related = _verify_steps(ctx, key)
        found = list(loaded.diagnostics)
        if loaded.scenario is not None:
            found += _check(ctx.swarm, loaded, loaded.scenario)
            if loaded.scenario.manifest in ctx.swarm.manifests:
                found += _runs_itself(ctx, key, loaded)
        out += [replace(d, secondary=(*d.secondary, *related)) for d in found]
    return out


def _runs_itself(ctx: CheckContext, key: str, loaded: LoadedScenario) -> Iterator[Diagnostic]:
    """A verify step inside the scenario's own task that leads back to this scenario."""
    chain = _verify_chain(ctx, key, [key])
    if chain:
        assert loaded.scenario is not None
        yield _Place(loaded).at(
            "PA345",
            ("manifest",),
            f"the task of manifest {loaded.scenario.manifest} runs this scenario again: {' -> '.join(chain)}",
            "verify the manifest from another manifest, e.g. one whose only step is the verify step",
        )


def _verify_chain(ctx: CheckContext, key: str, chain: list[str]) -> list[str]:
    """The scenarios, from `chain[-1]`, whose tasks' verify steps lead back to `key` ([] if none)."""
    current = ctx.scenarios.get(chain[-1])
    if current is None or current.scenario is None:
        return []
    for _, manifest in _reachable(ctx.swarm, current.scenario.manifest):
        for step in manifest.steps:
            if not isinstance(step, VerifyStep):
                continue
            if step.scenario == key:
                return [*chain, key]
            if step.scenario not in chain:
                found = _verify_chain(ctx, key, [*chain, step.scenario])
                if found:
                    return found
    return []


def _verify_steps(ctx: CheckContext, key: str) -> tuple[Label, ...]:
    """Where the spec names this scenario: the first `verify` step that does (one is enough)."""
    for name, manifest in ctx.swarm.manifests.items():
        for index, step in enumerate(manifest.steps):
            if isinstance(step, VerifyStep) and step.scenario == key:
                span = ctx.doc.value_span(("manifests", name, "steps", index, "scenario"))
                if span is not None:
                    return (Label(span, "the verify step that runs it"),)
    return ()


class _Place:
    """Diagnostics located in one scenario file."""

    def __init__(self, loaded: LoadedScenario) -> None:
        self.loaded = loaded

    def at(
        self, code: str, path: PathT, message: str, help_: str = "", on_key: bool = False, warning: bool = False
    ) -> Diagnostic:
        doc = self.loaded.doc
        span = None if doc is None else (doc.key_span(path) if on_key else doc.value_span(path))
        return Diagnostic(
            code,
            message,
            severity=Severity.WARNING if warning else Severity.ERROR,
            path=format_path(path),
            primary=Label(span) if span else None,
            help=help_,
        )


def _check(swarm: Swarm, loaded: LoadedScenario, scenario: Scenario) -> list[Diagnostic]:
    place = _Place(loaded)
    manifest = swarm.manifests.get(scenario.manifest)
    if manifest is None:
        names = sorted(swarm.manifests)
        hint = did_you_mean(scenario.manifest, names) or f"the spec's manifests: {', '.join(names) or '(none)'}"
        return [place.at("PA340", ("manifest",), f"the spec has no manifest {scenario.manifest!r}", hint)]
    return [
        *_inputs(place, scenario, manifest),
        *_tool_stubs(place, swarm, scenario),
        *_model_answers(place, swarm, scenario),
        *_expectations(place, scenario, manifest),
    ]


def _inputs(place: _Place, scenario: Scenario, manifest: Manifest) -> Iterator[Diagnostic]:
    declared = manifest.inputs
    for name, value in scenario.inputs.items():
        path: PathT = ("inputs", name)
        if name not in declared:
            hint = did_you_mean(name, sorted(declared)) or f"{scenario.manifest} takes: {_listing(declared)}"
            yield place.at("PA341", path, f"manifest {scenario.manifest} has no input {name!r}", hint, on_key=True)
            continue
        type_ = declared[name]
        problem = _type_problem(type_, value)
        if problem:
            yield place.at("PA341", path, f"input {name!r} must be a {type_}: {problem}", _type_hint(type_))
        file = place.loaded.files.get(name)
        if type_ in TEXT_TYPES and file is not None and file.text is None:
            yield place.at(
                "PA342",
                path,
                f"input {name!r}: cannot read {file.path}: {file.problem}",
                "`@path` is relative to the scenario file",
            )
    missing = [m for m in sorted(declared) if m not in scenario.inputs]
    if missing:
        yield place.at(
            "PA341",
            ("inputs",) if scenario.inputs else ("manifest",),
            f"missing input(s) of {scenario.manifest}: {', '.join(missing)}",
            "every input the manifest declares is given: " + ", ".join(f"{m}: <{declared[m]}>" for m in missing),
            on_key=bool(scenario.inputs),
        )


def _listing(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "(no inputs)"


def _type_problem(type_: str, value: object) -> str:
    if type_ in TEXT_TYPES:
        return "" if isinstance(value, str) else f"found {type(value).__name__}"
    if type_ == "int":
        return "" if isinstance(value, int) and not isinstance(value, bool) else f"found {value!r}"
    if type_ == "bool":
        return "" if isinstance(value, bool) else f"found {value!r}"
    return ""  # json and verdict: any JSON value


def _type_hint(type_: str) -> str:
    return {
        "int": "a whole number, unquoted",
        "bool": "true or false, unquoted",
    }.get(type_, 'text (quote it), or "@path" to read a file\'s text')


def _reachable(swarm: Swarm, start: str) -> list[tuple[str, Manifest]]:
    """The manifest and every manifest its `delegate` steps can hand work to, each once."""
    order: list[tuple[str, Manifest]] = []
    pending = [start]
    while pending:
        name = pending.pop(0)
        manifest = swarm.manifests.get(name)
        if manifest is None or any(seen == name for seen, _ in order):
            continue
        order.append((name, manifest))
        for step in manifest.steps:
            if isinstance(step, DelegateStep):
                pending += _delegated(swarm, step)
    return order


def _delegated(swarm: Swarm, step: DelegateStep) -> list[str]:
    if step.manifest is not None:
        return [step.manifest]
    # Without `manifest:` the node runs the core's only manifest (PA726 when it has several).
    of_core = [name for name, m in swarm.manifests.items() if m.core == step.core]
    return of_core if len(of_core) == 1 else []


def _tool_stubs(place: _Place, swarm: Swarm, scenario: Scenario) -> Iterator[Diagnostic]:
    stubbed = [stub.tool for stub in scenario.stubs.tools]
    called: list[str] = []
    for name, manifest in _reachable(swarm, scenario.manifest):
        for step in manifest.steps:
            if not isinstance(step, McpStep):
                continue
            called.append(step.tool)
            if step.tool not in stubbed:
                where = "" if name == scenario.manifest else f" (manifest {name}, delegated to)"
                yield place.at(
                    "PA343",
                    ("stubs", "tools") if stubbed else ("manifest",),
                    f"step {step.id!r}{where} calls tool {step.tool!r}, which has no stub: a scenario never "
                    "calls real servers",
                    f"add `- {{tool: {step.tool}, result: <what it returns>}}` under `stubs.tools`",
                    on_key=bool(stubbed),
                )
    for index, tool in enumerate(stubbed):
        if tool not in called:
            hint = did_you_mean(tool, sorted(set(called))) or (
                f"the task's mcp steps call: {', '.join(sorted(set(called)))}" if called else "it has no mcp steps"
            )
            yield place.at(
                "PA348",
                ("stubs", "tools", index, "tool"),
                f"no mcp step of the task calls {tool!r}; the stub is never used",
                hint,
                warning=True,
            )


def model_requests(step: CortStep) -> int:
    """Model requests of one cort step: a first answer, then per round its alternatives and a choice."""
    return 1 + step.rounds * (step.alternatives + 1)


def _model_answers(place: _Place, swarm: Swarm, scenario: Scenario) -> Iterator[Diagnostic]:
    cort = [
        (name, step)
        for name, m in _reachable(swarm, scenario.manifest)
        for step in m.steps
        if isinstance(step, CortStep)
    ]
    if not cort:
        return
    needed = sum(model_requests(step) for _, step in cort)
    answers = len(scenario.stubs.model.answers)
    steps = ", ".join(step.id for _, step in cort)
    if answers == 0:
        yield place.at(
            "PA344",
            ("stubs",) if "stubs" in _keys(place) else ("manifest",),
            f"the task's cort step(s) {steps} ask a model, and the scenario has no model answers",
            f"add `stubs.model.answers`: {needed} answer(s) in the order the task asks",
            on_key="stubs" in _keys(place),
        )
    elif answers < needed:
        yield place.at(
            "PA344",
            ("stubs", "model", "answers"),
            f"{answers} model answer(s) for cort step(s) {steps}, which ask {needed} time(s) "
            "(1 + rounds x (alternatives + 1) each)",
            "a request past the last answer fails the step",
            on_key=True,
            warning=True,
        )


def _keys(place: _Place) -> set[str]:
    doc = place.loaded.doc
    return set(doc.data) if doc is not None and isinstance(doc.data, dict) else set()


def _expectations(place: _Place, scenario: Scenario, manifest: Manifest) -> Iterator[Diagnostic]:
    expect = scenario.expect
    step_ids = [s.id for s in manifest.steps]
    for step_id in expect.steps:
        if step_id not in step_ids:
            hint = did_you_mean(step_id, step_ids) or f"its steps: {', '.join(step_ids)}"
            yield place.at(
                "PA346",
                ("expect", "steps", step_id),
                f"manifest {scenario.manifest} has no step {step_id!r}",
                hint,
                on_key=True,
            )
    outputs = sorted(manifest.outputs)
    for index, assertion in enumerate(expect.outputs):
        if assertion.output not in manifest.outputs:
            hint = did_you_mean(assertion.output, outputs) or f"its outputs: {', '.join(outputs) or '(none)'}"
            yield place.at(
                "PA347",
                ("expect", "outputs", index, "output"),
                f"manifest {scenario.manifest} has no output {assertion.output!r}",
                hint,
            )
    if expect.error_code is not None and expect.error_code not in CODES:
        yield place.at(
            "PA349",
            ("expect", "errorCode"),
            f"{expect.error_code} is no pyagent error code: the task can never fail with it",
            "`pyagent explain --list` lists the codes; tasks fail with PA72x and PA73x codes",
        )


__all__ = ["check_scenarios", "model_requests"]
