"""The local target as an operator sees it, checked with testinfra's local backend: the
listeners, the processes, and the permissions of the data files."""

from __future__ import annotations

import urllib.request

import pytest
import testinfra

from tests.integration import harness


@pytest.fixture(scope="module")
def host() -> testinfra.host.Host:
    return testinfra.get_host("local://")


def test_ports_listen_on_loopback_only(host: testinfra.host.Host, cluster3: harness.Cluster) -> None:
    for node in cluster3.stack.nodes:
        for kind in ("raft", "grpc", "metrics"):
            assert host.socket(f"tcp://127.0.0.1:{node.ports[kind]}").is_listening, (node.name, kind)
            assert not host.socket(f"tcp://0.0.0.0:{node.ports[kind]}").is_listening, (node.name, kind)


def test_one_process_per_node(host: testinfra.host.Host, cluster3: harness.Cluster) -> None:
    ours = [p for p in host.process.filter(comm="pyagent-node") if str(cluster3.stack.folder) in p.args]
    assert len(ours) == len(cluster3.stack.nodes)
    for node in cluster3.stack.nodes:
        (process,) = [p for p in ours if str(node.config) in p.args]
        assert process.pid == int(node.pid_file.read_text())
        assert process.sid == process.pid, "detached: the node leads its own session"
        assert f"--members {cluster3.stack.members_file}" in process.args


def test_healthz_and_metrics(cluster3: harness.Cluster) -> None:
    cluster3.wait_leader()
    for node in cluster3.stack.nodes:
        with urllib.request.urlopen(f"http://{node.metrics}/healthz", timeout=2) as response:
            assert response.status == 200
        values = harness.metrics(node)
        assert harness.metric_sum(values, "pyagent_raft_term") >= 1


def test_data_files_are_not_world_readable(host: testinfra.host.Host, cluster3: harness.Cluster) -> None:
    assert host.file(str(cluster3.stack.data_root)).mode & 0o077 == 0
    assert host.file(str(cluster3.stack.members_file)).mode == 0o600
    for node in cluster3.stack.nodes:
        data = host.file(str(node.data_dir))
        assert data.is_directory and data.mode & 0o077 == 0
        key = host.file(str(node.key_file))
        assert key.is_file and key.mode == 0o600
        listing = host.check_output("find %s -perm -o=r", str(node.data_dir))
        assert listing == "", f"world-readable: {listing}"
