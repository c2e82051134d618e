"""Shared helpers of the policy tests: compiling the examples, copying them to edit a copy,
and running the CLI in-process."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from pyagent_compile.cli import main
from pyagent_compile.pipeline import EnvironmentResult, compile_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("laptop", "research", "sovereign")
DATA = Path(__file__).resolve().parent / "data"


def example_environments(name: str) -> list[EnvironmentResult]:
    spec = ROOT / "examples" / name / "swarm.yaml"
    result = compile_spec(spec, f"examples/{name}/swarm.yaml")
    assert result.ok, result.diagnostics
    return result.environments


def copy_example(name: str, dest: Path, edit: tuple[tuple[str, str], ...] = (), append: str = "") -> Path:
    """A copy of examples/<name>/ under dest, with textual edits to its swarm.yaml (each `old`
    must occur) and text appended; returns the copied spec's path."""
    folder = dest / name
    shutil.copytree(ROOT / "examples" / name, folder)
    spec = folder / "swarm.yaml"
    text = spec.read_text(encoding="utf-8")
    for old, new in edit:
        assert old in text, old
        text = text.replace(old, new, 1)
    spec.write_text(text + append, encoding="utf-8")
    return spec


def run_cli(*argv: str, cwd: Path = ROOT) -> tuple[int, str, str]:
    """`pyagent ARGV` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()
