"""The hand-written stub pyagent_compile/_native.pyi matches the compiled extension."""

import subprocess
import sys

import pytest


def test_stub_matches_the_extension() -> None:
    pytest.importorskip("mypy.stubtest")
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "pyagent_compile._native"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
