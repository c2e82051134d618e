"""A nemesis: random kill -9s, restarts, pauses and network partitions while clients write and
read concurrently; afterwards every acknowledged write must be on every node and the recorded
history must be linearizable.

CI runs a few short seeds. Longer, from the command line:

    PYAGENT_NEMESIS_SEEDS=50 PYAGENT_NEMESIS_SECONDS=20 pytest tests/integration/test_nemesis.py

(PYAGENT_NEMESIS_FIRST_SEED=100 starts at seed 100, e.g. to run other seeds alongside.)

A failing seed is reproducible in its schedule (not in its timing): rerun it alone with
PYAGENT_NEMESIS_SEED=<n>.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from pyagent_compile.runtime.local import processes
from tests.integration import harness
from tests.integration.lincheck import check

SECONDS = float(os.environ.get("PYAGENT_NEMESIS_SECONDS", "4"))
if "PYAGENT_NEMESIS_SEED" in os.environ:
    SEEDS = [int(os.environ["PYAGENT_NEMESIS_SEED"])]
else:
    _FIRST = int(os.environ.get("PYAGENT_NEMESIS_FIRST_SEED", "0"))
    SEEDS = list(range(_FIRST, _FIRST + int(os.environ.get("PYAGENT_NEMESIS_SEEDS", "3"))))


def _nemesis(cluster: harness.Cluster, net: harness.Netns, rng: random.Random, until: float, log: list[str]) -> None:
    ids = sorted(cluster.clients)
    down: set[int] = set()
    paused: set[int] = set()
    while time.monotonic() < until:
        action = rng.choice(["kill", "restart", "partition", "heal", "pause", "resume"])
        if action == "kill" and len(down | paused) < len(ids) // 2:
            victim = rng.choice([n for n in ids if n not in down | paused])
            cluster.kill(victim)
            down.add(victim)
        elif action == "restart" and down:
            victim = rng.choice(sorted(down))
            cluster.restart(victim)
            down.discard(victim)
        elif action == "partition":
            minority = set(rng.sample(ids, rng.randint(1, len(ids) // 2)))
            net.partition(minority)
            victim = min(minority)
        elif action == "heal":
            net.heal()
            victim = 0
        elif action == "pause" and len(down | paused) < len(ids) // 2:
            victim = rng.choice([n for n in ids if n not in down | paused])
            pid = processes.node_pid(cluster.node_by_id(victim))
            if pid is not None:
                os.kill(pid, signal.SIGSTOP)
                paused.add(victim)
        elif action == "resume" and paused:
            victim = rng.choice(sorted(paused))
            pid = processes.node_pid(cluster.node_by_id(victim))
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
            paused.discard(victim)
        else:
            continue
        log.append(f"{time.monotonic():.3f} {action}")
        # a fault lasts a few election timeouts; Event.wait keeps the schedule interruptible
        threading.Event().wait(rng.uniform(0.2, 1.0))
    net.heal()
    for victim in paused:
        pid = processes.node_pid(cluster.node_by_id(victim))
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
    for victim in down:
        cluster.restart(victim)


@pytest.mark.parametrize("seed", SEEDS)
def test_nemesis(tmp_path: Path, daemon: Path, netns_ok: None, seed: int) -> None:
    rng = random.Random(seed)
    voters = rng.choice([3, 5])
    name = harness.unique_name(f"nem{seed}", voters)
    # Even seeds snapshot every 100 entries (the least the spec allows) and keep 100 entries
    # behind a snapshot, so a node back from a kill or a partition is often sent a snapshot
    # rather than entries: installing one under faults is exercised too. (Not drawn from `rng`,
    # so each seed's fault schedule stays what it was.)
    snapshot_every = 100 if seed % 2 == 0 else 10_000
    # Odd seeds add a client writing 512 KiB values, so a node back from a fault is megabytes of
    # entries behind and is sent them in bounded AppendEntries (PartialSuccess), not a snapshot.
    bulk_bytes = 0 if seed % 2 == 0 else 512 << 10
    stack = harness.compile_local(tmp_path, name, voters, snapshot_every)
    net = harness.Netns(f"nm{os.getpid() % 1000}s{seed % 100}", [n.id for n in stack.nodes])
    net.create()
    cluster = None
    history = harness.History()
    stop = threading.Event()
    log: list[str] = []
    try:
        cluster = harness.up_netns(stack, daemon, net, tmp_path / "netns")
        cluster.wait_leader(timeout=60)
        threads = harness.run_clients(cluster, history, stop, clients=4, registers=3, seed=seed, bulk_bytes=bulk_bytes)
        try:
            _nemesis(cluster, net, rng, time.monotonic() + SECONDS, log)
            cluster.wait_leader(timeout=60)
            before = harness.acked_count(history)
            harness.wait_for(lambda: harness.acked_count(history) >= before + 20, 60)  # the swarm recovered
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        top = max(s.commit_index for s in cluster.statuses().values() if s is not None)
        cluster.wait_applied(top, timeout=60)
        for node_id in cluster.clients:
            for key, value in history.acked_unique.items():
                got = cluster.get(node_id, key, stale=True)
                assert got.found and got.value == value, f"seed {seed}: node {node_id} lost {key}; faults: {log}"
        result = check(history.ops)
        if result.ok is not True:
            kept = tmp_path / f"history-{result.key}.txt"
            ops = sorted((op for op in history.ops if op.key == result.key), key=lambda op: op.call)
            offset = time.time() - time.monotonic()  # to line the operations up with node logs
            kept.write_text(f"# unix time = monotonic + {offset:.6f}\n" + "".join(f"{op}\n" for op in ops))
            verdict = "not linearizable" if result.ok is False else "undecided (search budget spent)"
            pytest.fail(f"seed {seed}: {verdict} on {result.key} (its operations: {kept}); faults: {log}")
    finally:
        stop.set()
        if cluster is not None:
            harness.stop_all(cluster)
        net.destroy()
        harness.release_name(name)
    # Passed: the nodes' data (hundreds of MB with bulk writes) is not needed; a failure keeps it.
    shutil.rmtree(stack.data_root, ignore_errors=True)
