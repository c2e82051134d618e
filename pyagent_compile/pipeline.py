"""The whole pipeline for one spec: load -> (overlay) -> model -> check -> plan.

Pure apart from reading the spec and the files it names; rendering and writing are the
caller's (the CLI's) next steps.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyagent_compile.check import CheckContext, run_checks
from pyagent_compile.diagnostics import Diagnostic, Label, Severity, Span
from pyagent_compile.load import Document, load_document
from pyagent_compile.load.overlay import effective_document, environment_names
from pyagent_compile.load.scenario import LoadedScenario, load_scenario
from pyagent_compile.load.tools_lock import load_tools_lock, lock_display
from pyagent_compile.model.build import build_swarm
from pyagent_compile.model.spec import Environment, Swarm, Tier, VerifyStep
from pyagent_compile.model.tools_lock import ToolsLock
from pyagent_compile.plan import Plan, build_plan
from pyagent_compile.plan.local import LOCAL_ENV, MAX_NODES, LocalPlan, build_local_plan, local_nodes
from pyagent_compile.plan.scenarios import scenario_contracts
from pyagent_compile.suggest import did_you_mean

DEFAULT_ENV = "default"

# The tools lock beside the spec (None if there is none) and its path as users see it.
Locked = tuple[ToolsLock | None, str]


@dataclass
class EnvironmentResult:
    name: str
    tier: Tier
    doc: Document
    swarm: Swarm | None = None
    plan: Plan | None = None
    # The scenario files this environment's verify steps name (and any asked for), by that path.
    scenarios: dict[str, LoadedScenario] = field(default_factory=dict)


@dataclass
class SpecResult:
    path: Path
    display: str
    base: Document | None = None
    environments: list[EnvironmentResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    local: LocalPlan | None = None

    @property
    def ok(self) -> bool:
        return not any(d.severity.value == "error" for d in self.diagnostics)


def display_path(path: Path, root: Path | None = None) -> str:
    """The path shown to users: relative to the working folder when inside it, always with /."""
    try:
        base = (root or Path.cwd()).resolve()
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13): the loader says PA100
        return path.as_posix()


def compile_spec(
    path: Path,
    display: str,
    only_env: str | None = None,
    local: bool = True,
    tools_lock: bool = True,
    extra_scenarios: Sequence[str] = (),
) -> SpecResult:
    """Every environment of the spec (or `only_env`), plus the `local` target unless `local` is
    False. `only_env="local"` compiles the local target alone. With `tools_lock`, the tools lock
    beside the spec (if any) is read and `mcp` steps are checked against it. `extra_scenarios`
    (paths relative to the spec's folder) are checked and put into work.json beside those of
    `verify` steps (`pyagent scenario run` adds scenarios/*.yaml)."""
    result = SpecResult(path, display)
    reader = _ScenarioReader(path, display, tuple(extra_scenarios))
    base, diags = load_document(path, display)
    result.diagnostics += diags
    if base is None:
        return result
    result.base = base
    lock: Locked = (None, "")
    if tools_lock:
        loaded, diags = load_tools_lock(path, display)
        result.diagnostics += diags
        lock = (loaded, lock_display(display, path))
    declared = environment_names(base)
    if LOCAL_ENV in declared:
        result.diagnostics.append(_reserved_local(base))
        return result
    names = declared or [DEFAULT_ENV]
    local_source = local_source_environment(declared)
    if only_env is not None:
        if only_env == LOCAL_ENV:
            names, local = [], True
        elif only_env not in names:
            result.diagnostics.append(_unknown_env(base, only_env, [*names, LOCAL_ENV]))
            return result
        else:
            names, local = [only_env], False
    seen: set[tuple[str, str, str, str]] = set()

    def add(diags: list[Diagnostic]) -> None:
        for diag in diags:
            key = (diag.code, str(diag.span), diag.message, diag.path)
            if key not in seen:
                seen.add(key)
                result.diagnostics.append(diag)

    for name in names:
        env_result, env_diags = _compile_environment(base, path, display, name, lock=lock, scenarios=reader)
        result.environments.append(env_result)
        add(env_diags)
    if local:
        source = next((e for e in result.environments if e.name == local_source), None)
        if source is None:
            source, env_diags = _compile_environment(
                base, path, display, local_source, tier="dev", lock=lock, scenarios=reader
            )
            add(env_diags)
        if source.swarm is not None and source.plan is not None:
            diag = _check_local_size(source)
            if diag is not None:
                add([diag])
            else:
                result.local = build_local_plan(
                    source.swarm, local_source, scenario_contracts(source.scenarios, source.swarm)
                )
    return result


def local_source_environment(declared: list[str]) -> str:
    """The environment whose effective values the local target uses: `dev` if declared, else
    the base spec (named `default`)."""
    return "dev" if "dev" in declared else DEFAULT_ENV


def _check_local_size(env: EnvironmentResult) -> Diagnostic | None:
    assert env.swarm is not None
    count = len(local_nodes(env.swarm))
    if count <= MAX_NODES:
        return None
    span = env.doc.key_span(("nodes",))
    # A warning, not an error: a spec for a large cluster is valid; it just cannot also run on
    # one machine, and that must not stop its Kubernetes stacks from compiling.
    return Diagnostic(
        "PA601",
        f"the local target is not rendered: it would run one process per replica, {count} here, and "
        f"at most {MAX_NODES} fit in a swarm's loopback port slot",
        severity=Severity.WARNING,
        path="nodes",
        primary=Label(span) if span else None,
        help="lower `replicas` in the `dev` environment's overrides; the local target uses them",
    )


def _reserved_local(base: Document) -> Diagnostic:
    span = base.key_span(("environments", LOCAL_ENV))
    return Diagnostic(
        "PA602",
        "the environment name `local` is reserved for the local target",
        path=f"environments.{LOCAL_ENV}",
        primary=Label(span) if span else None,
        help="rename it; the local target takes its values from `dev` (or the base spec)",
    )


def _tier_of(base: Document, name: str) -> Tier:
    raw = (base.data.get("environments") or {}).get(name) if isinstance(base.data, dict) else None
    tier = raw.get("tier") if isinstance(raw, dict) else None
    if tier in ("dev", "staging", "prod"):
        return tier  # type: ignore[no-any-return]
    return Environment().effective_tier(name)


def _compile_environment(
    base: Document,
    path: Path,
    display: str,
    name: str,
    tier: Tier | None = None,
    lock: Locked = (None, ""),
    scenarios: _ScenarioReader | None = None,
) -> tuple[EnvironmentResult, list[Diagnostic]]:
    # A CUE package is given as its directory; files the spec names are relative to it.
    spec_dir = path if path.is_dir() else path.parent
    display_dir = display if path.is_dir() else display.rpartition("/")[0]
    tier = tier or _tier_of(base, name)
    if name == DEFAULT_ENV and DEFAULT_ENV not in environment_names(base):
        doc, diags = base, list[Diagnostic]()
    else:
        doc, diags = effective_document(base, name, spec_dir, display_dir, load_document)
    env = EnvironmentResult(name, tier, doc)
    if diags:
        return env, diags
    swarm, diags = build_swarm(doc)
    if swarm is None:
        return env, diags
    env.swarm = swarm
    env.scenarios = scenarios.for_swarm(swarm) if scenarios is not None else {}
    ctx = CheckContext(
        swarm, doc, name, tier, spec_dir, tools_lock=lock[0], tools_lock_display=lock[1], scenarios=env.scenarios
    )
    diags = run_checks(ctx)
    # Warnings do not stop the plan: only errors do.
    if not any(d.severity is Severity.ERROR for d in diags):
        env.plan = build_plan(swarm, name, tier, scenario_contracts(env.scenarios, swarm))
    return env, diags


class _ScenarioReader:
    """Reads each scenario file once for all environments of a spec."""

    def __init__(self, path: Path, display: str, extra: tuple[str, ...]) -> None:
        self.spec_dir = path if path.is_dir() else path.parent
        self.display_dir = display if path.is_dir() else display.rpartition("/")[0]
        self.extra = extra
        self.cache: dict[str, LoadedScenario] = {}

    def for_swarm(self, swarm: Swarm) -> dict[str, LoadedScenario]:
        """The scenarios of the swarm's verify steps whose files exist (PA208 names the others)."""
        keys = [
            step.scenario
            for manifest in swarm.manifests.values()
            for step in manifest.steps
            if isinstance(step, VerifyStep) and (self.spec_dir / step.scenario).is_file()
        ]
        return {key: self.load(key) for key in sorted({*keys, *self.extra})}

    def load(self, key: str) -> LoadedScenario:
        if key not in self.cache:
            shown = posixpath.normpath(posixpath.join(self.display_dir, key)) if self.display_dir else key
            self.cache[key] = load_scenario(self.spec_dir / key, shown)
        return self.cache[key]


def _unknown_env(base: Document, env: str, names: list[str]) -> Diagnostic:
    span = base.key_span(("environments",)) or Span(base.file, 1, 1)
    hint = did_you_mean(env, names) or f"the spec declares: {', '.join(names)}"
    return Diagnostic("PA001", f"unknown environment {env!r}", primary=Label(span), help=hint)
