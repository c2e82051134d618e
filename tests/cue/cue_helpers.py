"""Helpers of the CUE tests: the real `cue` and `cuepos` binaries (from .ci/install-cue.sh).

Tests that need them are skipped, with the reason, only when they are not installed; CI
installs them, so there they always run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyagent_compile.load.cue import find_cue, find_cuepos

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"


def _with_tools_on_path() -> None:
    if TOOLS.is_dir() and str(TOOLS) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"


_with_tools_on_path()
_CUE = find_cue()
HAVE_CUE = _CUE is not None and find_cuepos(_CUE) is not None
needs_cue = pytest.mark.skipif(
    not HAVE_CUE, reason="the cue and cuepos binaries are not installed: run .ci/install-cue.sh"
)


def run_pyagent(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pyagent_compile", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
