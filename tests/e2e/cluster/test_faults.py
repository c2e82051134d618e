"""A part that cannot start: `up` names it and its log in one line, exits 1, and cleans up after itself.
Runs only with PYAGENT_E2E=1, as root, and only when no test cluster is on the machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYAGENT_E2E") != "1":
    pytest.skip("end-to-end cluster tests run only with PYAGENT_E2E=1 (make cluster-test)", allow_module_level=True)

from tests.e2e.cluster import down, tools
from tests.e2e.cluster.layout import Paths


def test_a_part_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    # A state folder whose path is too long for containerd's Unix sockets (at most 104 characters): a mistake
    # a user can make with --state; etcd and the control plane start, containerd cannot.
    paths = Paths(tmp_path / ("x" * 90))
    if down.leftovers(paths):
        pytest.skip("a test cluster is on this machine")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.e2e.cluster", "up", "--state", str(paths.state)],
        cwd=tools.ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "ready (" not in line and "starting" not in line]
    assert lines == [f"cluster: containerd exited with status 1 before it was ready; log: {paths.log('containerd')}"]
    assert "unix socket path too long" in paths.log("containerd").read_text()
    # `up` brought down what it had started (etcd, the apiserver, the controller manager, the scheduler)
    assert down.leftovers(paths) == []
    assert not proc.stdout  # no `export` lines for a cluster that is not up
