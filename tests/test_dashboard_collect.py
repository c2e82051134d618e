"""The dashboard's swarm document from node views, without a swarm: pools and their nodes, the
leader, and the same healthy/degraded verdict as `pyagent status` (a learner of a worker-only
pool is healthy; a stopped node or one that is not ready is not). The page itself is tested in
Chromium against a live swarm (tests/integration/test_observe.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyagent_compile.runtime.dashboard.collect import swarm_document
from pyagent_compile.runtime.local.stack import LocalStack, load_stack
from pyagent_compile.runtime.local.swarm import NodeView
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def research(tmp_path_factory: pytest.TempPathFactory) -> LocalStack:
    out = tmp_path_factory.mktemp("research")
    spec = ROOT / "examples" / "research" / "swarm.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "pyagent_compile", "compile", str(spec), "--out", str(out), "--env", "local"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stack, diag = load_stack(out / "research" / "local")
    assert stack is not None, diag
    return stack


def _views(stack: LocalStack, leader: int, **overrides: NodeView) -> list[NodeView]:
    """Every node answering in term 3 under `leader`: voters as followers, the others as learners."""
    views = []
    for node in stack.nodes:
        role = "Leader" if node.id == leader else ("Follower" if node.voter else "Learner")
        views.append(overrides.get(node.name, NodeView(node.name, node.id, 100 + node.id, role, 3, leader, 9, 9, 2)))
    return views


def test_a_swarm_with_learners_is_healthy_and_grouped_by_pool(research: LocalStack) -> None:
    leader = research.voters[0].id
    document = swarm_document(research, _views(research, leader))
    assert document["healthy"] is True and document["leader"] == leader
    assert [p["name"] for p in document["pools"]] == sorted({n.pool for n in research.nodes})
    roles = {n["node"]: n["role"] for p in document["pools"] for n in p["nodes"]}
    assert "Learner" in roles.values(), "the example needs a worker-only pool for this test"
    for pool in document["pools"]:
        assert {n["pool"] for n in pool["nodes"]} == {pool["name"]}


def test_a_stopped_or_unready_node_makes_it_degraded(research: LocalStack) -> None:
    leader = research.voters[0].id
    learner = next(n for n in research.nodes if not n.voter)
    stopped = {learner.name: NodeView(learner.name, learner.id, None, "stopped")}
    assert swarm_document(research, _views(research, leader, **stopped))["healthy"] is False
    behind = {learner.name: NodeView(learner.name, learner.id, 1, "Learner", 3, leader, 9, 2, 2, "behind")}
    assert swarm_document(research, _views(research, leader, **behind))["healthy"] is False


def test_without_an_agreed_leader_it_is_degraded(research: LocalStack) -> None:
    views = [NodeView(n.name, n.id, 1, "Candidate" if n.voter else "Learner", 4, None) for n in research.nodes]
    document = swarm_document(research, views)
    assert document["leader"] is None and document["healthy"] is False
