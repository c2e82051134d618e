"""The whole pipeline for one spec: load -> (overlay) -> model -> check -> plan.

Pure apart from reading the spec and the files it names; rendering and writing are the
caller's (the CLI's) next steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyagent_compile.check import CheckContext, run_checks
from pyagent_compile.diagnostics import Diagnostic, Label, Span
from pyagent_compile.load import Document, load_document
from pyagent_compile.load.overlay import effective_document, environment_names
from pyagent_compile.model.build import build_swarm
from pyagent_compile.model.spec import Environment, Swarm, Tier
from pyagent_compile.plan import Plan, build_plan
from pyagent_compile.suggest import did_you_mean

DEFAULT_ENV = "default"


@dataclass
class EnvironmentResult:
    name: str
    tier: Tier
    doc: Document
    swarm: Swarm | None = None
    plan: Plan | None = None


@dataclass
class SpecResult:
    path: Path
    display: str
    base: Document | None = None
    environments: list[EnvironmentResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity.value == "error" for d in self.diagnostics)


def display_path(path: Path, root: Path | None = None) -> str:
    """The path shown to users: relative to the working folder when inside it, always with /."""
    base = (root or Path.cwd()).resolve()
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def compile_spec(path: Path, display: str, only_env: str | None = None) -> SpecResult:
    result = SpecResult(path, display)
    base, diags = load_document(path, display)
    result.diagnostics += diags
    if base is None:
        return result
    result.base = base
    names = environment_names(base) or [DEFAULT_ENV]
    if only_env is not None:
        if only_env not in names:
            result.diagnostics.append(_unknown_env(base, only_env, names))
            return result
        names = [only_env]
    seen: set[tuple[str, str, str, str]] = set()
    for name in names:
        env_result, env_diags = _compile_environment(base, path, display, name)
        result.environments.append(env_result)
        for diag in env_diags:
            key = (diag.code, str(diag.span), diag.message, diag.path)
            if key not in seen:
                seen.add(key)
                result.diagnostics.append(diag)
    return result


def _tier_of(base: Document, name: str) -> Tier:
    raw = (base.data.get("environments") or {}).get(name) if isinstance(base.data, dict) else None
    tier = raw.get("tier") if isinstance(raw, dict) else None
    if tier in ("dev", "staging", "prod"):
        return tier  # type: ignore[no-any-return]
    return Environment().effective_tier(name)


def _compile_environment(
    base: Document, path: Path, display: str, name: str
) -> tuple[EnvironmentResult, list[Diagnostic]]:
    # A CUE package is given as its directory; files the spec names are relative to it.
    spec_dir = path if path.is_dir() else path.parent
    display_dir = display if path.is_dir() else display.rpartition("/")[0]
    tier = _tier_of(base, name)
    if name == DEFAULT_ENV and not environment_names(base):
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
    diags = run_checks(CheckContext(swarm, doc, name, tier, spec_dir))
    if not diags:
        env.plan = build_plan(swarm, name, tier)
    return env, diags


def _unknown_env(base: Document, env: str, names: list[str]) -> Diagnostic:
    span = base.key_span(("environments",)) or Span(base.file, 1, 1)
    hint = did_you_mean(env, names) or f"the spec declares: {', '.join(names)}"
    return Diagnostic("PA001", f"unknown environment {env!r}", primary=Label(span), help=hint)
