"""pyagent.toml: the specs a repository compiles with a bare `pyagent compile`.

out = "stacks"                  # optional, default "stacks"
[[spec]]
path = "examples/research/swarm.yaml"
out = "stacks"                  # optional, per spec
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic, Label, Span

PROJECT_FILE = "pyagent.toml"


@dataclass(frozen=True)
class SpecEntry:
    path: Path
    out: Path


@dataclass(frozen=True)
class Project:
    root: Path
    specs: tuple[SpecEntry, ...]


def find_project(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def _error(file: str, message: str, help_: str = "") -> Diagnostic:
    return Diagnostic("PA002", message, primary=Label(Span(file, 1, 1)), help=help_)


def load_project(path: Path, display: str) -> tuple[Project | None, list[Diagnostic]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return None, [_error(display, f"cannot read {display}: {exc}")]
    except tomllib.TOMLDecodeError as exc:
        return None, [_error(display, f"{display} is not valid TOML: {exc}")]
    root = path.parent
    default_out = data.get("out", "stacks")
    specs = data.get("spec")
    if not isinstance(default_out, str) or not isinstance(specs, list) or not specs:
        return None, [
            _error(
                display,
                f"{display} needs `[[spec]]` tables with a `path`",
                'add:\n[[spec]]\npath = "examples/laptop/swarm.yaml"',
            )
        ]
    entries = []
    for index, entry in enumerate(specs):
        spec_path = entry.get("path") if isinstance(entry, dict) else None
        out = entry.get("out", default_out) if isinstance(entry, dict) else None
        if not isinstance(spec_path, str) or not isinstance(out, str):
            return None, [_error(display, f"spec #{index + 1} in {display} needs a string `path`")]
        entries.append(SpecEntry(root / spec_path, root / out))
    return Project(root, tuple(entries)), []
