"""The configuration each node daemon reads (`/etc/pyagent/node.json`), one per pool.

Its shape is the contract `contracts/node_config.py`; the local target builds the same document
with loopback addresses and a static membership (plan/local.py)."""

from __future__ import annotations

from pyagent_compile.contracts import node_config as contract
from pyagent_compile.model.quantity import parse_duration, parse_quantity
from pyagent_compile.model.resources import gpu_memory_per_node, kv_blocks_per_node
from pyagent_compile.model.spec import Swarm
from pyagent_compile.plan import naming

DATA_DIR = "/var/lib/pyagent"
WORK_FILE = "/etc/pyagent/manifests/work.json"
# Step images: an OCI image layout on the node's volume (docs/tasks.md says how to fill it).
IMAGE_LAYOUT = f"{DATA_DIR}/images"
# A worker's lease: its tasks are placed again this long after its last heartbeat.
WORK_LEASE_MS = 10_000
# Tasks a worker runs at once: two per CPU (a task mostly waits on its sandbox or a model).
TASKS_PER_CPU = 2
SOUL_DIR = "/etc/pyagent/soul"
CLUSTER_DOMAIN = "cluster.local"


def node_config(
    swarm: Swarm, pool_name: str, namespace: str, membership: contract.Membership | None = None
) -> contract.NodeConfig:
    """node.json of `pool_name` in a Kubernetes namespace; `membership` replaces the
    Kubernetes one (the local target's static membership)."""
    pool = swarm.nodes[pool_name]
    ports = swarm.mesh.ports
    service = naming.peer_service(swarm.metadata.name)
    return contract.NodeConfig(
        swarm=swarm.metadata.name,
        pool=pool_name,
        roles=sorted(pool.roles),
        cores=sorted(pool.cores),
        data_dir=DATA_DIR,
        ports=contract.Ports(mesh=ports.mesh, raft=ports.raft, grpc=ports.grpc, metrics=ports.metrics),
        listen=None,
        discovery=contract.Discovery(
            mode="dns" if swarm.mesh.discovery == "auto" else swarm.mesh.discovery,
            dns=f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}",
            seeds=[],
            neighbours=swarm.mesh.neighbours,
        ),
        consensus=_consensus(swarm),
        memory=_memory(swarm, pool_name),
        sovereignty=_sovereignty(swarm, pool_name),
        runtime=contract.Runtime(worker_threads=None),
        membership=membership or kubernetes_membership(swarm, namespace, pool_name),
        work=work_section(swarm, pool_name, WORK_FILE, IMAGE_LAYOUT),
        traces=_traces(swarm),
    )


def _traces(swarm: Swarm) -> contract.Traces | None:
    traces = swarm.observability.traces
    return contract.Traces(otlp_endpoint=traces.endpoint) if traces else None


def work_section(swarm: Swarm, pool_name: str, file: str, image_layout: str) -> contract.Work | None:
    """What a node of the pool offers to run tasks; None unless the pool has the worker role."""
    pool = swarm.nodes[pool_name]
    if "worker" not in pool.roles:
        return None
    cpu = parse_quantity(pool.hardware.cpu)
    gpu = gpu_memory_per_node(pool)
    return contract.Work(
        file=file,
        max_tasks=max(1, int(cpu * TASKS_PER_CPU)),
        capacity=contract.WorkCapacity(
            cpu_millis=int(cpu * 1000),
            memory_bytes=int(parse_quantity(pool.hardware.memory)),
            gpu_memory_bytes=int(gpu) if gpu is not None else 0,
        ),
        min_isolation=pool.sandbox.min_isolation,
        lease_ms=WORK_LEASE_MS,
        workspace_bytes=int(parse_quantity(pool.sandbox.workspace)),
        image_layout=image_layout,
    )


def kubernetes_membership(swarm: Swarm, namespace: str, pool_name: str) -> contract.KubernetesMembership:
    """The pools a pod of `pool_name` needs to know. Only voters lead, and the leader admits and
    removes the pods of every pool, so a voter pool's node.json lists every pool; any other pool's
    lists itself and the voter pools (where the seed is). Listing every pool everywhere made a
    swarm's configuration grow with the square of its pools (1,000 pools: 333 MB of stacks)."""
    name = swarm.metadata.name
    voter = "voter" in swarm.nodes[pool_name].roles
    return contract.KubernetesMembership(
        namespace=namespace,
        service=naming.peer_service(name),
        cluster_domain=CLUSTER_DOMAIN,
        service_account=naming.service_account(name),
        pools=[
            contract.KubernetesPool(
                name=pool,
                stateful_set=naming.statefulset(name, pool),
                index=index,
                voter="voter" in swarm.nodes[pool].roles,
            )
            for index, pool in enumerate(sorted(swarm.nodes))
            if voter or pool == pool_name or "voter" in swarm.nodes[pool].roles
        ],
    )


def _consensus(swarm: Swarm) -> contract.Consensus:
    c = swarm.consensus
    return contract.Consensus(
        election_timeout_ms=(c.election_timeout.min_ms, c.election_timeout.max_ms),
        heartbeat_ms=c.heartbeat_ms,
        snapshot_every_entries=c.snapshot.every_entries,
        snapshots_kept=c.snapshot.keep,
    )


def _memory(swarm: Swarm, pool_name: str) -> contract.Memory:
    kv = swarm.memory.kv
    return contract.Memory(
        kv=contract.KvMemory(
            block_size=kv.block_size,
            blocks=kv_blocks_per_node(swarm, swarm.nodes[pool_name]),
            eviction=kv.eviction,
            ttl_seconds=parse_duration(kv.ttl) if kv.ttl else None,
        ),
        decay_half_life_seconds=parse_duration(swarm.memory.decay_half_life),
    )


def _sovereignty(swarm: Swarm, pool_name: str) -> contract.Sovereignty:
    sovereignty = swarm.sovereignty
    return contract.Sovereignty(
        jurisdiction=swarm.nodes[pool_name].placement.jurisdiction,
        owner_public_key=swarm.metadata.owner.public_key if swarm.metadata.owner else None,
        soul_key_file=f"{SOUL_DIR}/{sovereignty.soul.secret_ref.key}" if sovereignty.soul else None,
        peer_share=sovereignty.peers.share,
        trusted_peers=list(sovereignty.peers.trusted),
    )
