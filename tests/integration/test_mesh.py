"""The P2P mesh on a real local swarm (docs/mesh.md): three `pyagent-node` processes form the
mesh from the rendered seeds, admit exactly the Raft membership's keys, tell each other of
membership and of the tasks they run, and refuse a stranger that claims a member's name with a
key of its own.

The mesh itself (gossip through the overlay past the neighbour bound, size and rate limits, a
removed member cut off, the feed's catch-up) is tested in native/crates/pyagent-mesh/tests.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyagent_compile.plan.local import port_slot
from pyagent_compile.runtime.local.stack import StackNode
from tests.integration import harness
from tests.integration.test_tasks import BUGGY, spec_text

# Generous: nodes on a loaded 2-core machine; a passing run does not wait for it.
PATIENCE = 90.0


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory, daemon: Path) -> Iterator[harness.Cluster]:
    tmp = tmp_path_factory.mktemp("mesh")
    name = harness.unique_name("mesh", 3)
    stack = harness.compile_spec(tmp, name, spec_text(name))
    try:
        with harness.running(stack, daemon) as cluster:
            yield cluster
    finally:
        harness.release_name(name)


def _metric(cluster: harness.Cluster, node_id: int, name: str, **labels: str) -> float:
    node = cluster.node_by_id(node_id)
    return harness.metric_sum(harness.metrics(node), name, **labels)


def _every_node(cluster: harness.Cluster, name: str, at_least: float, **labels: str) -> bool:
    return all(_metric(cluster, n.id, name, **labels) >= at_least for n in cluster.stack.nodes)


def test_members_form_the_mesh_and_hear_of_membership(swarm: harness.Cluster) -> None:
    harness.wait_for(lambda: _every_node(swarm, "pyagent_mesh_peers", 2), PATIENCE)
    for node in swarm.stack.nodes:
        assert _metric(swarm, node.id, "pyagent_mesh_peers") == 2
        assert _metric(swarm, node.id, "pyagent_mesh_members_admitted") == 3
    leader = swarm.wait_leader()
    followers = [n.id for n in swarm.stack.nodes if n.id != leader]

    # The leader announces the membership it leads; the followers receive it from the mesh.
    def heard() -> bool:
        return all(_metric(swarm, f, "pyagent_mesh_messages_delivered_total", topic="events") >= 1 for f in followers)

    harness.wait_for(heard, PATIENCE)
    assert _metric(swarm, leader, "pyagent_mesh_messages_published_total", topic="events") >= 1


def test_the_nodes_running_a_task_tell_the_others(swarm: harness.Cluster) -> None:
    before = {
        n.id: _metric(swarm, n.id, "pyagent_mesh_messages_delivered_total", topic="events") for n in swarm.stack.nodes
    }
    done = harness.pyagent(
        "run", str(swarm.stack.folder), "triage", "--wait", "--format", "json",
        "--input", f"source=@{BUGGY / 'calc.py'}", "--input", f"tests=@{BUGGY / 'test_calc.py'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    task = json.loads(done.stdout)["task"]
    # The triage task delegates a sub-task: its owner and the sub-task's each announce a start
    # and an end, so every node but the one announcing hears at least two events.
    owners = {task["owner"]}

    def heard() -> bool:
        return all(
            _metric(swarm, n.id, "pyagent_mesh_messages_delivered_total", topic="events") >= before[n.id] + 2
            for n in swarm.stack.nodes
            if n.id not in owners
        )

    harness.wait_for(heard, PATIENCE)
    for owner in owners:
        assert _metric(swarm, owner, "pyagent_mesh_messages_published_total", topic="events") >= 2


def test_a_stranger_claiming_a_members_name_is_refused(swarm: harness.Cluster, tmp_path: Path) -> None:
    # The stranger runs node 3's very configuration, with a key of its own: a valid-looking
    # name and id, free ports, and the swarm's members file with its key in node 3's place.
    stack = swarm.stack
    target = stack.nodes[2]
    slot_name = harness.unique_name("stranger", 1)
    ports = range(port_slot(slot_name), port_slot(slot_name) + 4)
    config = json.loads(target.config.read_text())
    data = tmp_path / "stranger"
    data.mkdir(mode=0o700)
    config["dataDir"] = str(data)
    config["listen"] = {
        key: f"127.0.0.1:{port}" for key, port in zip(("raft", "grpc", "metrics", "mesh"), ports, strict=True)
    }
    key = subprocess.run(
        [str(swarm.daemon), "keygen", "--data-dir", str(data)], capture_output=True, text=True, check=True
    ).stdout.strip()
    members = json.loads(stack.members_file.read_text())
    for member in members["members"]:
        if member["nodeId"] == target.id:
            member["publicKey"] = key
    (tmp_path / "stranger.json").write_text(json.dumps(config))
    (tmp_path / "members.json").write_text(json.dumps(members))
    refused_before = _metric(swarm, 1, "pyagent_mesh_connections_refused_total", reason="not-a-member")
    log = (tmp_path / "stranger.log").open("wb")
    stranger = subprocess.Popen(
        [
            str(swarm.daemon),
            "run",
            "--config",
            str(tmp_path / "stranger.json"),
            "--members",
            str(tmp_path / "members.json"),
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        harness.wait_for(
            lambda: _metric(swarm, 1, "pyagent_mesh_connections_refused_total", reason="not-a-member") > refused_before,
            PATIENCE,
        )
        stranger_metrics = f"127.0.0.1:{ports[2]}"
        harness.wait_for(lambda: _answers(stack.nodes[0], stranger_metrics), PATIENCE)
        seen = harness.metrics(stack.nodes[0], stranger_metrics)
        # It holds no mesh connection and has received nothing from the swarm.
        assert harness.metric_sum(seen, "pyagent_mesh_peers") == 0
        assert harness.metric_sum(seen, "pyagent_mesh_messages_delivered_total") == 0
        # The real members still see each other, and only each other.
        for node in stack.nodes:
            assert _metric(swarm, node.id, "pyagent_mesh_peers") == 2
    finally:
        stranger.kill()
        stranger.wait()
        log.close()
        harness.release_name(slot_name)


def _answers(node: StackNode, address: str) -> bool:
    try:
        harness.metrics(node, address)
    except OSError:  # URLError is one: not listening yet
        return False
    return True


def test_mdns_finds_the_members_without_seeds(tmp_path: Path, daemon: Path, netns_ok: None) -> None:
    """discovery mode mdns: three nodes, each in a network namespace of the test's (bridged), are
    given no seeds at all and form the full mesh from what libp2p's mDNS hears. Without mDNS
    nothing would ever dial: the Raft transport is not the mesh."""
    name = harness.unique_name("mdns", 3)
    stack = harness.compile_local(tmp_path, name, 3, 100)
    net = harness.Netns(f"md{os.getpid() % 1000}", [n.id for n in stack.nodes])
    net.create()
    cluster = None
    try:
        cluster = harness.up_netns(stack, daemon, net, tmp_path / "netns", mdns=True)
        running = cluster

        def metric(node_id: int, name: str, **labels: str) -> float:
            try:
                values = harness.metrics(running.node_by_id(node_id), running.metrics_addresses[node_id])
            except OSError:  # not listening yet
                return -1.0
            return harness.metric_sum(values, name, **labels)

        ids = [n.id for n in stack.nodes]
        harness.wait_for(lambda: all(metric(i, "pyagent_mesh_peers") == 2 for i in ids), PATIENCE)
        for i in ids:
            assert metric(i, "pyagent_mesh_mdns_announcements_total", kind="member") >= 2
    finally:
        if cluster is not None:
            harness.stop_all(cluster)
        net.destroy()
        harness.release_name(name)
