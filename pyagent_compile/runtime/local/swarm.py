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
        node.name, node.id, pid, status.role, status.term, status.leader_id, status.commit_index, status.applied_index
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
