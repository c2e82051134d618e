"""How a running local swarm is: each node's view over gRPC, and waiting for a leader."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from pyagent_compile.runtime.local.processes import node_pid
from pyagent_compile.runtime.local.stack import LocalStack, StackNode
from pyagent_compile.runtime.nodeapi.client import NodeClient


@dataclass(frozen=True)
class NodeView:
    name: str
    id: int
    pid: int | None
    role: str  # Leader, Follower, Candidate, Learner, Shutdown; or stopped / unreachable
    term: int | None = None
    leader_id: int | None = None
    commit_index: int | None = None
    applied_index: int | None = None
    mesh_peers: int | None = None
    # Why the node's /healthz answers 503 (recovering from damage, behind, stuck); "" when ready.
    unhealthy: str = ""
    # The members this node holds a mesh connection with (by node id).
    mesh_peer_ids: tuple[int, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "node": self.name,
            "id": self.id,
            "pid": self.pid,
            "role": self.role,
            "term": self.term,
            "leader": self.leader_id,
            "commitIndex": self.commit_index,
            "appliedIndex": self.applied_index,
            "meshPeers": self.mesh_peers,
            "meshPeerIds": list(self.mesh_peer_ids),
            "unhealthy": self.unhealthy,
        }


def node_view(node: StackNode, timeout: float = 1.0) -> NodeView:
    pid = node_pid(node)
    if pid is None:
        return NodeView(node.name, node.id, None, "stopped")
    client = NodeClient(node.grpc)
    try:
        status = client.status(timeout=timeout)
    except grpc.RpcError:
        return NodeView(node.name, node.id, pid, "unreachable")
    finally:
        client.close()
    return NodeView(
        node.name,
        node.id,
        pid,
        status.role,
        status.term,
        status.leader_id,
        status.commit_index,
        status.applied_index,
        status.mesh_peers,
        status.unhealthy,
        tuple(status.mesh_peer_ids),
    )


def swarm_view(stack: LocalStack, timeout: float = 1.0) -> list[NodeView]:
    return [node_view(n, timeout) for n in stack.nodes]


def agreed_leader(stack: LocalStack, views: list[NodeView]) -> int | None:
    """The leader id that a node claims as Leader and a majority of voters acknowledge."""
    leaders = [v for v in views if v.role == "Leader"]
    if not leaders:
        return None
    # Among several self-declared leaders (a stale one in a partition), the highest term wins.
    leader = max(leaders, key=lambda v: v.term or 0)
    voters = {n.id for n in stack.voters}
    agreeing = sum(1 for v in views if v.id in voters and v.leader_id == leader.id and v.term == leader.term)
    return leader.id if agreeing > len(voters) // 2 else None


# How long a node that trails the leader gets to reach the leader's commit index of the first
# look before `status` calls it stuck. A follower under write load trails by a few entries and
# passes that mark within milliseconds; one the leader cannot bring back (its log was damaged
# and the leader keeps sending from where it used to be) never does.
CATCH_UP_SECONDS = 2.0


def lagging_nodes(
    stack: LocalStack,
    views: list[NodeView],
    leader: int,
    look: Callable[[StackNode], NodeView] = node_view,
    timeout: float = CATCH_UP_SECONDS,
) -> dict[str, int]:
    """Nodes that answer but do not apply what the leader had committed at the first look, within
    `timeout`: {node: entries behind at the last look}."""
    target = next(v.commit_index for v in views if v.id == leader) or 0
    behind = {v.name: v for v in views if v.applied_index is not None and v.applied_index < target}
    deadline = time.monotonic() + timeout
    while behind and time.monotonic() < deadline:
        time.sleep(0.1)  # the nodes' state is remote; polling is the only way to observe it
        again = {name: look(stack.node(name)) for name in behind}
        behind = {n: v for n, v in again.items() if v.applied_index is not None and v.applied_index < target}
    return {name: target - (v.applied_index or 0) for name, v in sorted(behind.items())}


# How long `up` waits, once a leader is agreed, for every node to be ready (to know the leader,
# or to finish joining as the bootstrapper adds it) before it reports the swarm.
SETTLE_SECONDS = 10.0


def settle(stack: LocalStack, views: list[NodeView], timeout: float = SETTLE_SECONDS) -> list[NodeView]:
    """The nodes' views once none says it is not ready, or the last views when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while any(v.unhealthy for v in views) and time.monotonic() < deadline:
        time.sleep(0.1)  # the nodes' state is remote; polling is the only way to observe it
        views = swarm_view(stack, timeout=0.5)
    return views


def wait_for_leader(
    stack: LocalStack,
    timeout: float,
    progress: Callable[[str], None] = lambda _: None,
    alive: Callable[[], str | None] = lambda: None,
) -> tuple[int | None, list[NodeView]]:
    """Poll every node until a majority agrees on a leader, `alive()` reports a dead node, or the
    time is up. Returns the leader id (or None) and the last views."""
    deadline = time.monotonic() + timeout
    views: list[NodeView] = []
    while True:
        views = swarm_view(stack, timeout=0.5)
        leader = agreed_leader(stack, views)
        if leader is not None or alive() is not None or time.monotonic() >= deadline:
            return leader, views
        answering = sum(1 for v in views if v.term is not None)
        terms = sorted({v.term for v in views if v.term is not None})
        progress(
            f"waiting for a leader: {answering}/{len(views)} nodes answering" + (f", term {terms[-1]}" if terms else "")
        )
        time.sleep(0.1)  # the nodes' state is remote; polling is the only way to observe it
