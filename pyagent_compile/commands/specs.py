"""Which specs a command works on: the ones named, or those pyagent.toml lists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.pipeline import display_path
from pyagent_compile.project import PROJECT_FILE, find_project, load_project


@dataclass(frozen=True)
class Target:
    path: Path
    display: str
    out: Path


def resolve_targets(specs: list[str], out: str | None) -> tuple[list[Target], list[Diagnostic]]:
    if specs:
        out_dir = Path(out or "stacks")
        return [Target(Path(s), display_path(Path(s)), out_dir) for s in specs], []
    project_file = find_project(Path.cwd())
    if project_file is None:
        return [], [
            Diagnostic(
                "PA003",
                f"no spec given and no {PROJECT_FILE} found here or above",
                help=f"run `pyagent compile path/to/swarm.yaml`, or add a {PROJECT_FILE}",
            )
        ]
    project, diags = load_project(project_file, display_path(project_file))
    if project is None:
        return [], diags
    targets = [Target(e.path, display_path(e.path), Path(out) if out else e.out) for e in project.specs]
    return targets, []
