"""What the dashboard shows, read from a running local swarm: each node's view (gRPC Status), the
committed task table (ListTasks, DescribeTask), and throughput and latency sampled from the
nodes' /metrics. Read-only: nothing here signs or submits a command."""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pyagent_compile.runtime.local.stack import LocalStack
from pyagent_compile.runtime.local.swarm import NodeView, agreed_leader, swarm_view
from pyagent_compile.runtime.tasks import SwarmClient, view_to_json
from pyagent_compile.runtime.waterfall import build_tree, tree_to_json

# Ten minutes of samples at the default interval: what the graphs show.
HISTORY = 300
SCRAPE_TIMEOUT = 2.0


def swarm_document(stack: LocalStack, views: list[NodeView]) -> dict[str, Any]:
    """The map: pools with their nodes, each node's Raft role and health, and the leader."""
    leader = agreed_leader(stack, views)
    by_name = {v.name: v for v in views}
    pools: dict[str, list[dict[str, Any]]] = {}
    for node in stack.nodes:
        view = by_name[node.name].to_json()
        pools.setdefault(node.pool, []).append({**view, "pool": node.pool, "voter": node.voter})
    return {
        "swarm": stack.swarm,
        "leader": leader,
        "pools": [{"name": name, "nodes": nodes} for name, nodes in sorted(pools.items())],
        # `pyagent status`'s verdict: an agreed leader, every node answering, none not ready
        # (learners of non-voter pools are healthy; a node behind or rejoining is not).
        "healthy": leader is not None and all(v.term is not None and not v.unhealthy for v in views),
    }


def task_rows(client: SwarmClient) -> list[dict[str, Any]]:
    """Every task of the committed table, newest first, with the fields the list shows."""
    rows = [
        {
            "id": t.id,
            "manifest": t.manifest,
            "core": t.core,
            "state": t.state,
            "owner": t.owner,
            "parent": t.parent,
            "submittedMs": t.submitted_ms,
            "finishedMs": t.finished_ms,
            "steps": len(t.steps),
            "errorCode": t.error_code,
        }
        for t in client.list()
    ]
    rows.sort(key=lambda r: (r["submittedMs"], r["id"]), reverse=True)
    return rows


def task_trace(client: SwarmClient, task_id: str) -> dict[str, Any] | None:
    """The task's waterfall (runtime/waterfall.py, as `pyagent trace --format json`), or None."""

    def lookup(tid: str) -> dict[str, Any] | None:
        view = client.describe(tid)
        return view_to_json(view) if view.found else None

    root = lookup(task_id)
    if root is None:
        return None
    return tree_to_json(build_tree(root, lookup))


# -- throughput and latency ----------------------------------------------------------------------
def scrape(address: str) -> dict[str, float]:
    """One node's /metrics as {series: value}, `name{label="v",...}` keyed as Prometheus prints."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=SCRAPE_TIMEOUT) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return values


def _total(nodes: list[dict[str, float]], name: str) -> float:
    return sum(v for node in nodes for k, v in node.items() if k == name or k.startswith(name + "{"))


@dataclass
class Sample:
    at: float
    nodes: list[dict[str, float]]


@dataclass
class MetricsHistory:
    """Samples every node's /metrics on its own thread and turns consecutive samples into rates."""

    stack: LocalStack
    interval: float = 2.0
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=HISTORY + 1))
    errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, name="dashboard-metrics", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self.interval)

    def sample_once(self) -> None:
        nodes = []
        errors = {}
        for node in self.stack.nodes:
            try:
                nodes.append(scrape(node.metrics))
            except (OSError, ValueError) as error:  # a stopped node: the graphs show the others
                errors[node.name] = str(error)
        with self._lock:
            self.samples.append(Sample(time.time(), nodes))
            self.errors = errors

    def series(self) -> dict[str, Any]:
        """Per interval: commits/s (the highest commit index), mesh messages delivered/s, mean
        commit latency (ms) and the tasks running and queued (the leader's table)."""
        with self._lock:
            samples = list(self.samples)
            unreachable = dict(sorted(self.errors.items()))
        out: dict[str, list[float | None]] = {
            "t": [],
            "commitsPerSecond": [],
            "meshMessagesPerSecond": [],
            "commitLatencyMs": [],
            "tasksRunning": [],
            "tasksQueued": [],
        }
        for before, after in itertools.pairwise(samples):
            seconds = max(after.at - before.at, 1e-6)
            out["t"].append(round(after.at, 3))
            out["commitsPerSecond"].append(_rate(before, after, seconds, _highest("pyagent_raft_commit_index")))
            out["meshMessagesPerSecond"].append(
                _rate(before, after, seconds, lambda n: _total(n, "pyagent_mesh_messages_delivered_total"))
            )
            out["commitLatencyMs"].append(_mean_latency_ms(before, after))
            out["tasksRunning"].append(_leader_tasks(after, "running"))
            out["tasksQueued"].append(_leader_tasks(after, "queued"))
        return {"interval": self.interval, "series": out, "unreachable": unreachable}


def _highest(name: str) -> Callable[[list[dict[str, float]]], float]:
    return lambda nodes: max((n.get(name, 0.0) for n in nodes), default=0.0)


def _rate(before: Sample, after: Sample, seconds: float, value: Callable[[list[dict[str, float]]], float]) -> float:
    return round(max(value(after.nodes) - value(before.nodes), 0.0) / seconds, 3)


def _mean_latency_ms(before: Sample, after: Sample) -> float | None:
    count = _total(after.nodes, "pyagent_commit_latency_seconds_count") - _total(
        before.nodes, "pyagent_commit_latency_seconds_count"
    )
    if count <= 0:
        return None
    total = _total(after.nodes, "pyagent_commit_latency_seconds_sum") - _total(
        before.nodes, "pyagent_commit_latency_seconds_sum"
    )
    return round(total / count * 1000, 3)


def _leader_tasks(sample: Sample, state: str) -> float:
    leaders = [n for n in sample.nodes if n.get("pyagent_raft_is_leader") == 1.0]
    if not leaders:
        return 0.0
    return leaders[0].get(f'pyagent_tasks{{state="{state}"}}', 0.0)


def snapshot(stack: LocalStack) -> dict[str, Any]:
    return swarm_document(stack, swarm_view(stack))
