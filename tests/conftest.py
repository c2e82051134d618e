"""Shared fixtures: the repository root and an in-process runner for the `pyagent` CLI."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyagent_compile.cli import main

CLI = Callable[..., "Run"]
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/swarm.yaml"))


def stack_files(folder: Path) -> list[Path]:
    """The files under a stacks folder that pyagent generated: without the runtime state that
    `pyagent up --local` keeps in `<swarm>/local/data/` (git-ignored, never compiled)."""
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "/local/data/" not in "/" + p.relative_to(folder).as_posix()
    ]


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def in_root() -> Iterator[Path]:
    """Run with the repository root as the working folder (paths in output are relative)."""
    before = Path.cwd()
    os.chdir(ROOT)
    try:
        yield ROOT
    finally:
        os.chdir(before)


@pytest.fixture
def pyagent(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*args: str) -> Run:
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
