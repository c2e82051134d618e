"""`node.json`: the configuration each node daemon reads (`pyagent.dev/node/v1alpha3`).

The compiler builds one per pool for Kubernetes (in a ConfigMap) and one per process for the
local target; `pyagent-node` reads it into serde structs that mirror these models field for
field (native/crates/pyagent-node/src/config/contract.rs, `deny_unknown_fields`). The JSON
Schema generated from these models is committed as specs/node-config.schema.json; a test feeds
every `node.json` the compiler renders to the daemon's own parser (`pyagent-node check-config`).

A change of shape is a new apiVersion: the daemon refuses a version it does not know rather
than guess at fields.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

NODE_CONFIG_API: Literal["pyagent.dev/node/v1alpha3"] = "pyagent.dev/node/v1alpha3"

Port = Annotated[int, Field(ge=0, le=65535)]
Count = Annotated[int, Field(ge=1)]


class Contract(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, alias_generator=to_camel, populate_by_name=True, defer_build=True
    )

    def to_json(self) -> dict[str, Any]:
        # Every field is written, None as null: the daemon's structs have no defaults to fill in.
        return self.model_dump(mode="json", by_alias=True)


class Ports(Contract):
    mesh: Port
    raft: Port
    grpc: Port
    metrics: Port


class Listen(Contract):
    """Loopback addresses of the local target; a pod listens on every interface on `ports`."""

    raft: str
    grpc: str
    metrics: str
    mesh: str


class Discovery(Contract):
    """How the mesh finds peers (docs/mesh.md): `seeds` (the other members' mesh addresses) on the
    local target, the headless Service's name (every pod's address, on `ports.mesh`) in Kubernetes."""

    mode: Literal["static", "dns", "mdns"]
    dns: str | None = Field(description="The headless Service's name (Kubernetes); null locally.")
    seeds: list[str] = Field(description="host:port of other members' mesh listeners (the local target).")
    neighbours: Count


class Consensus(Contract):
    election_timeout_ms: tuple[Count, Count]
    heartbeat_ms: Count
    snapshot_every_entries: Count
    snapshots_kept: Count


class KvMemory(Contract):
    block_size: Count
    blocks: Annotated[int, Field(ge=2)]
    eviction: str
    ttl_seconds: Count | None


class Memory(Contract):
    kv: KvMemory
    decay_half_life_seconds: Count


class Sovereignty(Contract):
    jurisdiction: str | None
    owner_public_key: str | None
    soul_key_file: str | None
    peer_share: str
    trusted_peers: list[str]


class Runtime(Contract):
    worker_threads: Count | None = Field(description="Threads of the async runtime; null: one per CPU.")


class Member(Contract):
    node_id: Count
    name: str
    raft: str
    grpc: str
    voter: bool
    public_key: str | None = Field(description="base64 Ed25519 key; null when `--members` supplies it.")


class StaticMembership(Contract):
    """Every member known in advance (the local target): ids, addresses; keys through `--members`."""

    mode: Literal["static"] = "static"
    node_id: Count
    name: str
    join: bool
    members: list[Member]


class KubernetesPool(Contract):
    """One StatefulSet of the swarm. Node ids of pool `index` are `index * 1000 + ordinal + 1`.
    Its replica count is not here: the leader reads it from the live StatefulSet when it admits
    a pod, so that scaling one pool changes no other pool's configuration (nor restarts it)."""

    name: str
    stateful_set: str
    index: Annotated[int, Field(ge=0)]
    voter: bool


class KubernetesMembership(Contract):
    """Members are the pods of the swarm's StatefulSets, found by their stable DNS names; each
    makes its key on first start and is admitted by the leader (docs/kubernetes.md)."""

    mode: Literal["kubernetes"] = "kubernetes"
    namespace: str
    service: str
    cluster_domain: str
    service_account: str
    pools: list[KubernetesPool]


Membership = Annotated[StaticMembership | KubernetesMembership, Field(discriminator="mode")]


class WorkCapacity(Contract):
    cpu_millis: Annotated[int, Field(ge=0)]
    memory_bytes: Annotated[int, Field(ge=0)]
    gpu_memory_bytes: Annotated[int, Field(ge=0)]


IsolationLevel = Literal["namespaces", "landlock_seccomp", "limits_only"]


class Work(Contract):
    """Set on nodes of pools with the `worker` role: what they offer to run tasks (docs/tasks.md)."""

    file: str = Field(description="work.json (contracts/work.py), relative to this file's folder or absolute.")
    max_tasks: Count = Field(description="Tasks this node runs at once.")
    capacity: WorkCapacity
    min_isolation: IsolationLevel = Field(description="The weakest sandbox isolation a step may run with.")
    lease_ms: Count = Field(description="A task's ownership lasts this long without a heartbeat from the node.")
    workspace_bytes: Count = Field(description="Disk quota of a task's workspace.")
    image_layout: str = Field(
        description="The OCI image layout holding the images of `sandbox` steps, relative to this file's folder "
        "or absolute (filled with `skopeo copy docker://REF oci:DIR:REF`; docs/tasks.md)."
    )


class Traces(Contract):
    """OTLP export of task traces (`observability.traces`; pyagent-node telemetry.rs)."""

    otlp_endpoint: str = Field(description="An OTLP/gRPC receiver, http://host:port.")


class NodeConfig(Contract):
    api_version: Literal["pyagent.dev/node/v1alpha3"] = NODE_CONFIG_API
    swarm: str
    pool: str
    roles: list[str]
    cores: list[str]
    data_dir: str
    ports: Ports
    listen: Listen | None
    discovery: Discovery
    consensus: Consensus
    memory: Memory
    sovereignty: Sovereignty
    runtime: Runtime
    membership: Membership
    work: Work | None
    traces: Traces | None


def json_schema() -> str:
    """The committed specs/node-config.schema.json."""
    schema = NodeConfig.model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = "https://pyagent.dev/schemas/node-config-v1alpha3.json"
    schema["title"] = "pyagent node.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
