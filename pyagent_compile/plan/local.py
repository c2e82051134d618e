"""The `local` target: one node process per replica on loopback, for a laptop or CI.

Which values: the `dev` environment's effective values when the spec declares `dev`, else the
base spec (compiled at the dev tier). Kubernetes-only settings have no meaning for processes on
one machine and are ignored: hardware requests (cpu, memory, storage, storageClass), GPUs,
placement (region, zones, jurisdiction labels), the image, network policies and the firewall.

Ports are deterministic and documented (docs/local-and-raft.md): every swarm gets a slot of
`SLOT_WIDTH` ports in [PORT_BASE, PORT_BASE + SLOTS * SLOT_WIDTH), chosen by the SHA-256 of its
name, and node i (0-based, pools sorted by name, then ordinal) takes the four ports
`slot + 4*i + (0 raft, 1 grpc, 2 metrics, 3 mesh)`. The range sits below Linux's ephemeral
ports (32768+), so outgoing connections never take them. The examples' slots do not collide
(tests/test_local_target.py checks it).

Data lives in `data/<node>/` under the stack folder (the members file with the public keys
that `pyagent up` collects is `data/members.json`): relative paths, so the rendered files are
the same on every machine and `pyagent compile --check` never sees runtime files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyagent_compile.contracts import node_config as contract
from pyagent_compile.contracts.local_stack import LocalNodeEntry, LocalStackManifest
from pyagent_compile.contracts.node_config import NodeConfig
from pyagent_compile.contracts.work import Scenario, WorkFile
from pyagent_compile.model.spec import Swarm
from pyagent_compile.plan import naming
from pyagent_compile.plan.dashboard import dashboard_json
from pyagent_compile.plan.nodeconfig import node_config
from pyagent_compile.plan.work import work_file

WORK_FILE_NAME = "work.json"
# The local swarm's step images: an OCI image layout in the stack folder, which the user fills
# (`skopeo copy docker://REF oci:<stack>/images:REF`); compile never writes there.
IMAGES_DIR_NAME = "images"

LOCAL_ENV = "local"
PORT_BASE = 20000
SLOT_WIDTH = 200
SLOTS = 50
PORTS_PER_NODE = 4
MAX_NODES = SLOT_WIDTH // PORTS_PER_NODE
PORT_OFFSETS = {"raft": 0, "grpc": 1, "metrics": 2, "mesh": 3}


def port_slot(swarm: str) -> int:
    """The first port of a swarm's slot."""
    index = int(hashlib.sha256(swarm.encode()).hexdigest(), 16) % SLOTS
    return PORT_BASE + index * SLOT_WIDTH


@dataclass(frozen=True)
class LocalPlan(LocalStackManifest):
    """The local target: `local.json` (the manifest it extends, contracts/local_stack.py) and the
    `node.json` of every node."""

    configs: dict[str, NodeConfig]  # node name -> node.json
    work: WorkFile  # work.json: the manifests and cores, for `pyagent run` and delegation
    # prometheus.yml scraping every node, and the Grafana dashboard over it (docs/observability.md)
    scrape_config: dict[str, Any]
    dashboard: dict[str, Any]


def local_nodes(swarm: Swarm) -> list[tuple[str, str, bool]]:
    """(node name, pool, voter) for every replica, in id order."""
    return [
        (f"{pool}-{ordinal}", pool, "voter" in swarm.nodes[pool].roles)
        for pool in sorted(swarm.nodes)
        for ordinal in range(swarm.nodes[pool].replicas)
    ]


def build_local_plan(
    swarm: Swarm, source_environment: str, scenarios: Mapping[str, Scenario] | None = None
) -> LocalPlan:
    """Assumes `len(local_nodes(swarm)) <= MAX_NODES` (checked by check/local.py)."""
    slot = port_slot(swarm.metadata.name)
    nodes = tuple(
        LocalNodeEntry(
            id=index + 1,
            name=name,
            pool=pool,
            voter=voter,
            ports={p: slot + PORTS_PER_NODE * index + off for p, off in PORT_OFFSETS.items()},
        )
        for index, (name, pool, voter) in enumerate(local_nodes(swarm))
    )
    configs = {n.name: _node_config(swarm, n, nodes) for n in nodes}
    name = swarm.metadata.name
    namespace = naming.namespace(name, LOCAL_ENV)
    return LocalPlan(
        name,
        source_environment,
        nodes,
        configs,
        work_file(swarm, scenarios),
        scrape_config=local_scrape_config(swarm, nodes, namespace),
        dashboard=dashboard_json(name, LOCAL_ENV, namespace),
    )


def local_scrape_config(swarm: Swarm, nodes: tuple[LocalNodeEntry, ...], namespace: str) -> dict[str, Any]:
    """A prometheus.yml for the local swarm. Each target is labelled as a PodMonitor labels a
    pod (`namespace`, `pod`), so the one dashboard's queries work on both."""
    targets = [{"targets": [n.address("metrics")], "labels": {"namespace": namespace, "pod": n.name}} for n in nodes]
    interval = swarm.observability.scrape_interval
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": f"pyagent-{swarm.metadata.name}", "static_configs": targets}],
    }


def _node_config(swarm: Swarm, node: LocalNodeEntry, nodes: tuple[LocalNodeEntry, ...]) -> NodeConfig:
    """node.json for one process (contracts/node_config.py)."""
    membership = contract.StaticMembership(
        node_id=node.id,
        name=node.name,
        join=False,
        # Public keys are made by `pyagent up` (`pyagent-node keygen`) and passed with
        # `--members`; they are runtime state, never rendered.
        members=[
            contract.Member(
                node_id=n.id,
                name=n.name,
                voter=n.voter,
                raft=n.address("raft"),
                grpc=n.address("grpc"),
                public_key=None,
            )
            for n in nodes
        ],
    )
    config = node_config(swarm, node.pool, namespace="", membership=membership)
    return config.model_copy(
        update={
            # The daemon resolves a relative dataDir against the config file's folder (nodes/).
            "data_dir": f"../{node.data_dir}",
            "listen": contract.Listen(**{p: node.address(p) for p in ("grpc", "metrics", "raft", "mesh")}),
            "ports": contract.Ports(**node.ports),
            "discovery": contract.Discovery(
                mode="static",
                dns=None,
                seeds=[n.address("mesh") for n in nodes if n.id != node.id],
                neighbours=swarm.mesh.neighbours,
            ),
            # Every node of a local swarm shares one machine: a one-thread runtime per node saves
            # the cross-thread wake-ups (3 nodes on 2 cores: ~20% more writes; docs/local-and-raft.md).
            "runtime": contract.Runtime(worker_threads=1),
            "sovereignty": config.sovereignty.model_copy(update={"jurisdiction": None}),
            # work.json sits in the stack folder, one up from the node configs (nodes/).
            "work": config.work.model_copy(
                update={"file": f"../{WORK_FILE_NAME}", "image_layout": f"../{IMAGES_DIR_NAME}"}
            )
            if config.work
            else None,
        }
    )
