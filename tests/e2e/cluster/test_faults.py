"""A part that cannot start: `up` names it and its log in one line, exits 1, and cleans up after itself.
Runs only with PYAGENT_E2E=1, as root, and only when no test cluster is on the machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYAGENT_E2E") != "1":
    pytest.skip("end-to-end cluster tests run only with PYAGENT_E2E=1 (make cluster-test)", allow_module_level=True)

from tests.e2e.cluster import down, kube, procs, tools, up, versions
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


def test_down_after_the_runtime_and_kubelet_were_killed(tmp_path: Path) -> None:
    """kill -9 of containerd and the kubelet while pods run: their shims and containers are orphaned, and
    `down` still finds and removes every process, mount, network namespace and cgroup of the cluster."""
    paths = Paths(tmp_path / "state")
    if down.leftovers(paths):
        pytest.skip("a test cluster is on this machine")
    try:
        up.up(paths)
        kube.kubectl(
            paths,
            "create",
            "deployment",
            "sleepers",
            f"--image={versions.TEST_IMAGE}",
            "--replicas=2",
            "--",
            "sleep",
            "3600",
        )
        kube.kubectl(paths, "rollout", "status", "deployment/sleepers", "--timeout=300s")
        for part in ("containerd", "kubelet"):
            pid = procs.saved_pid(paths, part)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        assert procs.pids_mentioning(str(paths.containerd_socket)), "the shims outlive containerd"
        assert any(m.startswith(str(paths.state)) for m in _mounts()), "the pods' mounts are still there"
    finally:
        left = down.down(paths)
    assert left == []
    assert not any(m.startswith(str(paths.state)) for m in _mounts())


def _mounts() -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
