"""The local target end to end: real pyagent-node processes on loopback, driven by the CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import stat
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pyagent_compile.runtime.local import processes
from pyagent_compile.runtime.nodeapi.client import NotLeader, Signer, _Sequence, put_command
from tests.integration import harness
from tests.integration.lincheck import check


def _status_json(stack_folder: Path) -> tuple[int, dict[str, object]]:
    done = harness.pyagent("status", str(stack_folder), "--format", "json")
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("voters", [3, 5])
def test_swarm_elects_a_leader_and_stops_cleanly(tmp_path: Path, daemon: Path, voters: int) -> None:
    stack = harness.compile_local(tmp_path, harness.unique_name(f"elect{voters}", voters), voters)
    cluster = harness.up_local(stack, daemon)
    try:
        leader = cluster.wait_leader()
        code, status = _status_json(stack.folder)
        assert code == 0
        nodes = status["nodes"]
        assert isinstance(nodes, list) and len(nodes) == voters
        assert status["leader"] == leader
        assert sum(1 for n in nodes if n["role"] == "Leader") == 1
        assert all(n["pid"] and n["term"] == nodes[0]["term"] for n in nodes)
        text = harness.pyagent("status", str(stack.folder))
        assert "swarm healthy" in text.stdout and "LEADER" in text.stdout
        # a second `up` refuses: the swarm already runs
        again = harness.pyagent("up", "--local", str(stack.folder))
        assert again.returncode == 2 and "PA616" in again.stderr
    finally:
        cluster.close()
        down = harness.pyagent("down", str(stack.folder), "--timeout", "10")
    assert down.returncode == 0, down.stderr
    assert f"stopped {voters} node(s)" in down.stdout
    assert all(processes.node_pid(n) is None and not n.pid_file.exists() for n in stack.nodes)
    assert all(n.key_file.exists() for n in stack.nodes), "data is kept without --purge"
    code, status = _status_json(stack.folder)
    assert code == 1 and all(n["role"] == "stopped" for n in status["nodes"])  # type: ignore[union-attr]
    purge = harness.pyagent("down", str(stack.folder), "--purge")
    assert purge.returncode == 0 and not stack.data_root.exists()


def test_up_restarts_the_nodes_that_are_down_and_leaves_the_others(cluster3: harness.Cluster) -> None:
    """A node killed with SIGKILL: `pyagent up --local` starts it alone (the running nodes keep
    their processes), it rejoins with its data and catches up with what it missed."""
    leader = cluster3.wait_leader()
    victim = next(n for n in cluster3.stack.nodes if n.id != leader)
    pids = {n.name: processes.node_pid(n) for n in cluster3.stack.nodes}
    cluster3.kill(victim.id)
    missed = cluster3.put("while-down", b"1")
    again = harness.pyagent("up", "--local", str(cluster3.stack.folder), "--timeout", "60")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "PA616" not in again.stderr
    for node in cluster3.stack.nodes:
        if node.name != victim.name:
            assert processes.node_pid(node) == pids[node.name], f"{node.name} was restarted"
    assert processes.node_pid(victim) not in (None, pids[victim.name])
    cluster3.wait_applied(missed.index, nodes=[victim.id], timeout=60)
    assert cluster3.get(victim.id, "while-down", stale=True).value == b"1"


def test_thousand_proposals_are_readable_on_every_node(cluster3: harness.Cluster) -> None:
    cluster3.wait_leader()
    values = {f"k{i:04d}": f"v{i}-{random.random()}".encode() for i in range(1000)}
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda kv: cluster3.put(*kv), values.items()))
    assert all(r.applied for r in results)
    top = max(r.index for r in results)
    cluster3.wait_applied(top)
    for node_id in cluster3.clients:
        for key, value in values.items():
            got = cluster3.get(node_id, key, stale=True)  # this node's own applied state
            assert got.found and got.value == value, (node_id, key)
    # a linearizable read is served by the leader; followers name it
    leader = cluster3.wait_leader()
    assert cluster3.get(leader, "k0999").value == values["k0999"]
    follower = next(n for n in cluster3.clients if n != leader)
    with pytest.raises(NotLeader) as redirect:
        cluster3.get(follower, "k0999")
    assert redirect.value.leader_id == leader


def test_kill_leader_mid_stream_loses_no_acknowledged_write(cluster3: harness.Cluster) -> None:
    cluster = cluster3
    leader = cluster.wait_leader()
    history = harness.History()
    stop = threading.Event()
    threads = harness.run_clients(cluster, history, stop, clients=6, registers=5, seed=1)
    try:
        harness.wait_for(lambda: harness.acked_count(history) >= 150, 60)
        cluster.kill(leader, signal.SIGKILL)
        new_leader = cluster.wait_leader(among={n for n in cluster.clients if n != leader})
        before = harness.acked_count(history)
        harness.wait_for(lambda: harness.acked_count(history) >= before + 150, 60)
        cluster.restart(leader)
        harness.wait_for(lambda: harness.acked_count(history) >= before + 250, 60)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert new_leader != leader
    # every node, the restarted one included, ends with every acknowledged write
    top = max(s.commit_index for s in cluster.statuses().values() if s is not None)
    cluster.wait_applied(top)
    for node_id in cluster.clients:
        for key, value in history.acked_unique.items():
            got = cluster.get(node_id, key, stale=True)
            assert got.found and got.value == value, f"node {node_id} lost acknowledged {key}"
    result = check(history.ops)
    assert result.ok is True, f"history not linearizable on key {result.key} ({result.operations} ops)"
    assert len(history.acked_unique) > 50
    # not vacuous: the reads were checked, so one read changed to a value never written fails
    reads = [i for i, op in enumerate(history.ops) if op.kind == "get" and op.value is not None]
    assert len(reads) > 20
    tampered = list(history.ops)
    tampered[reads[-1]] = dataclasses.replace(tampered[reads[-1]], value="never-written")
    assert check(tampered).ok is False


def test_forged_client_command_is_rejected(cluster3: harness.Cluster) -> None:
    cluster = cluster3
    leader = cluster.wait_leader()
    node = cluster.node_by_id(leader)
    before = harness.metric_sum(harness.metrics(node), "pyagent_rejected_messages_total", channel="client")
    outsider = Ed25519PrivateKey.generate()
    for signer_id in (1, 99):  # a member's id with the wrong key, and an id that is no member
        forged = Signer(cluster.stack.swarm, signer_id, outsider, _Sequence())
        with pytest.raises(grpc.RpcError) as error:
            cluster.clients[leader].submit(forged.sign(put_command("forged", b"x")))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    # a genuine command signed by a member for another swarm does not verify either
    other = Signer("another-swarm", cluster.signer.node_id, cluster.signer.key, _Sequence())
    with pytest.raises(grpc.RpcError):
        cluster.clients[leader].submit(other.sign(put_command("forged", b"x")))
    after = harness.metric_sum(harness.metrics(node), "pyagent_rejected_messages_total", channel="client")
    assert after >= before + 3
    assert not cluster.get(leader, "forged").found
    assert cluster.put("genuine", b"ok").applied  # the swarm still works


def test_forged_raft_message_is_rejected(cluster3: harness.Cluster) -> None:
    """An append-entries/vote frame on the Raft port, signed by a key that is not a member's."""
    import socket

    cluster = cluster3
    cluster.wait_leader()
    target = cluster.stack.nodes[0]
    before = harness.metric_sum(harness.metrics(target), "pyagent_rejected_messages_total", channel="raft")
    outsider = Ed25519PrivateKey.generate()
    body = msgpack.packb(
        {"Vote": {"vote": {"leader_id": {"term": 999, "node_id": 2}, "committed": False}, "last_log_id": None}}
    )
    seq = time.time_ns() // 1000
    swarm = cluster.stack.swarm.encode()
    signed = b"pyagent.node.v1.raft\x00" + swarm + b"\x00" + struct.pack(">QQQ", 2, target.id, seq) + body
    envelope = msgpack.packb([2, target.id, seq, body, outsider.sign(signed)], use_bin_type=True)
    term_before = max(s.term for s in cluster.statuses().values() if s is not None)
    with socket.create_connection(("127.0.0.1", target.ports["raft"]), timeout=5) as conn:
        conn.sendall(struct.pack(">I", len(envelope)) + envelope)
        conn.settimeout(3)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            conn.recv(65536)  # an error frame, or the connection closed: either way no effect
    after = harness.metric_sum(harness.metrics(target), "pyagent_rejected_messages_total", channel="raft")
    assert after >= before + 1
    statuses = cluster.statuses()
    assert all(s is not None and s.term < 999 for s in statuses.values()), "the forged vote took effect"
    assert max(s.term for s in statuses.values() if s is not None) >= term_before


def test_data_files_are_private(cluster3: harness.Cluster) -> None:
    for node in cluster3.stack.nodes:
        for path in [node.data_dir, *node.data_dir.rglob("*")]:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert mode & 0o007 == 0, f"{path} is world-accessible ({oct(mode)})"
        assert stat.S_IMODE(os.stat(node.key_file).st_mode) == 0o600


def test_minority_partition_cannot_commit(tmp_path: Path, daemon: Path, netns_ok: None) -> None:
    name = harness.unique_name("part", 5)
    stack = harness.compile_local(tmp_path, name, 5)
    net = harness.Netns(f"pt{os.getpid() % 10000}", [n.id for n in stack.nodes])
    net.create()
    cluster = None
    try:
        cluster = harness.up_netns(stack, daemon, net, tmp_path / "netns")
        leader = cluster.wait_leader(timeout=60)
        assert cluster.put("before", b"1").applied
        follower = next(n for n in cluster.clients if n != leader)
        minority = {leader, follower}
        net.partition(minority)
        # the old leader cannot commit: its proposal is not acknowledged
        old_commit = cluster.statuses()[leader].commit_index  # type: ignore[union-attr]
        with pytest.raises(grpc.RpcError):
            cluster.clients[leader].submit(cluster.signer.sign(put_command("minority", b"x")), timeout=3)
        assert cluster.statuses()[leader].commit_index == old_commit  # type: ignore[union-attr]
        # the majority elects a leader among itself and commits
        majority = set(cluster.clients) - minority
        new_leader = cluster.wait_leader(timeout=30, among=majority)
        cluster.leader_hint = new_leader
        result = cluster.put("majority", b"y")
        assert result.applied
        assert not cluster.get(new_leader, "minority").found
        net.heal()
        cluster.wait_applied(result.index, timeout=30)
        for node_id in cluster.clients:
            assert cluster.get(node_id, "majority", stale=True).value == b"y"
    finally:
        if cluster is not None:
            harness.stop_all(cluster)
        net.destroy()
