"""The swarm spec, `apiVersion: pyagent.dev/v1alpha1`, `kind: Swarm`: the product's public contract.

Field names are camelCase in YAML and CUE (like Kubernetes) and snake_case here. Every model
is closed (unknown keys are errors) and strict (a quoted number is a string), because a
silently ignored or coerced key in infrastructure config is a production incident.
`pyagent schema` publishes the JSON Schema generated from these models.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from pydantic.alias_generators import to_camel

from pyagent_compile.model.types import (
    Cidr,
    DnsLabel,
    Duration,
    ImageRef,
    Jurisdiction,
    LabelKey,
    LabelValue,
    ModelEndpoint,
    OtlpEndpoint,
    Port,
    PublicKey,
    Quantity,
    invalid,
)

API_VERSION = "pyagent.dev/v1alpha1"


class SpecModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, alias_generator=to_camel, populate_by_name=True, defer_build=True
    )


# -- metadata ------------------------------------------------------------------------------
class Owner(SpecModel):
    """Who owns the swarm. The soul and personal data are sealed to this key."""

    name: str = Field(default="", description="A human-readable name of the owner.")
    public_key: PublicKey = Field(description="`ed25519:<base64>` of the owner's 32-byte public key.")


class Metadata(SpecModel):
    name: DnsLabel = Field(description="The swarm's name, a DNS-1123 label; names every resource.")
    owner: Owner | None = None
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)


# -- image -----------------------------------------------------------------------------------
class Image(SpecModel):
    """The node image: a reference (pinned by digest outside dev) or built from native/."""

    ref: ImageRef | None = Field(default=None, description="registry/name@sha256:<digest> or :tag (dev).")
    build: Literal["native"] | None = Field(default=None, description="Build the image from native/.")
    repository: ImageRef = Field(default="ghcr.io/pyagent/pyagent-node", description="Where a built image is pushed.")

    @model_validator(mode="after")
    def _one_source(self) -> Image:
        if (self.ref is None) == (self.build is None):
            raise invalid("the image has exactly one of `ref` and `build`")
        return self


# -- node pools ------------------------------------------------------------------------------
class Gpu(SpecModel):
    model: str = Field(description="A model from the GPU catalog, e.g. H100-80GB (`pyagent explain PA302`).")
    count: int = Field(default=1, ge=1, le=16, description="GPUs per node.")


class Hardware(SpecModel):
    cpu: Quantity = Field(description="CPU per node, a Kubernetes quantity: 4, 500m.")
    memory: Quantity = Field(description="Memory per node: 16Gi.")
    storage: Quantity = Field(
        default="10Gi", description="Persistent volume per node for Raft log, snapshots and KV spill."
    )
    storage_class: DnsLabel | None = Field(
        default=None, description="StorageClass of the volume (should be encrypted)."
    )
    gpu: Gpu | None = None


class Placement(SpecModel):
    region: str | None = Field(default=None, description="topology.kubernetes.io/region of the nodes.")
    zones: list[str] = Field(default_factory=list, description="Zones to spread over (topology.kubernetes.io/zone).")
    jurisdiction: Jurisdiction | None = Field(
        default=None, description="Legal jurisdiction of the pool, e.g. EU, DE, US-CA."
    )


Role = Literal["voter", "worker", "gateway"]


class PoolSandbox(SpecModel):
    """How the pool's nodes isolate the commands of `sandbox` steps (docs/sandbox.md)."""

    min_isolation: Literal["namespaces", "landlock_seccomp", "limits_only"] = Field(
        default="landlock_seccomp",
        description="The weakest isolation a step may run with: namespaces (bubblewrap), landlock_seccomp "
        "(where user namespaces are not available, e.g. most pods) or limits_only. Below it, a step fails (PA722).",
    )
    workspace: Quantity = Field(
        default="256Mi",
        description="Disk quota of a task's workspace (a tmpfs of this size where the node may mount one; "
        "its pages count against the step's memory limit too).",
    )


class Pool(SpecModel):
    """A node pool: identical nodes with the same hardware, placement, roles and cores."""

    replicas: int = Field(ge=1, le=10_000)
    roles: list[Role] = Field(default_factory=lambda: list[Role](["worker"]), min_length=1)
    hardware: Hardware
    placement: Placement = Field(default_factory=Placement)
    cores: list[str] = Field(default_factory=list, description="Names of cores (under `cores:`) this pool runs.")
    sandbox: PoolSandbox = Field(default_factory=PoolSandbox)


# -- cores -------------------------------------------------------------------------------------
class Tool(SpecModel):
    """An MCP server a core may call."""

    name: DnsLabel
    transport: Literal["stdio", "http"] = "stdio"
    command: list[str] = Field(default_factory=list, description="For stdio: the command to start.")
    url: str | None = Field(default=None, description="For http: the server's URL.")
    port: Port | None = Field(default=None, description="For an http server run beside the node: its port.")

    @model_validator(mode="after")
    def _transport_fields(self) -> Tool:
        if self.transport == "stdio" and not self.command:
            raise invalid("a stdio tool needs `command`")
        if self.transport == "http" and self.url is None and self.port is None:
            raise invalid("an http tool needs `url` or `port`")
        return self


class CoreResources(SpecModel):
    gpu_memory: Quantity | None = Field(default=None, description="GPU memory the core needs per node.")
    cpu: Quantity | None = None
    memory: Quantity | None = None


class ModelApiKey(SpecModel):
    """The model server's API key, by reference to a Kubernetes Secret: never a literal key."""

    secret: DnsLabel = Field(description="The Secret's name, in the swarm's namespace.")
    key: str = Field(min_length=1, description="The key of the Secret's data that holds the API key.")


class Model(SpecModel):
    """An OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp's server, Ollama)
    and the model it serves. Sampling settings left out are the server's defaults; temperature 0
    with a seed makes a `cort` step repeatable."""

    name: str = Field(min_length=1, description="The model name sent with each request, e.g. qwen3-coder-30b.")
    endpoint: ModelEndpoint | None = Field(
        default=None,
        description="The base URL of the server, e.g. http://127.0.0.1:8080/v1 (+ /chat/completions).",
    )
    api_key: ModelApiKey | None = Field(default=None, description="Sent as a bearer token; from a Secret.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000, description="Most tokens in one answer.")


def _model_form(value: Any) -> str:
    # Validate against one form only: a mapping is a server, anything else a name. Otherwise a
    # mistake inside the mapping would also be reported as "expected a string".
    return "server" if isinstance(value, dict | Model) else "name"


CoreModel = Annotated[
    Annotated[str, Tag("name")] | Annotated[Model, Tag("server")],
    Discriminator(_model_form),
]


class Core(SpecModel):
    """A cognitive skill-set plugged into the universal agent."""

    description: str = ""
    model: CoreModel | None = Field(
        default=None,
        description="The LLM the core reasons with: a model name, or the server that serves it "
        "(`{name, endpoint, apiKey, temperature, seed, maxTokens}`); `cort` steps need an endpoint.",
    )
    tools: list[Tool] = Field(default_factory=list)
    resources: CoreResources = Field(default_factory=CoreResources)


# -- logic manifests -----------------------------------------------------------------------------
ValueType = Literal["string", "int", "bool", "json", "diff", "trace", "report", "verdict", "file"]


class StepBase(SpecModel):
    id: DnsLabel
    after: list[str] = Field(default_factory=list, description="Steps that must finish first.")
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="Input bindings: `inputs.<name>` (the manifest's) or `steps.<id>` (a step's output).",
    )
    timeout: Duration = "10m"
    retries: int = Field(default=0, ge=0, le=10, description="Attempts after a failed one (timeouts, sandbox limits).")


class SandboxStep(StepBase):
    """Reproduce in a sandbox: run a command in an isolated container and capture the trace."""

    kind: Literal["sandbox"]
    image: ImageRef | None = None
    command: list[str] = Field(min_length=1)


class AnalyzeTraceStep(StepBase):
    """Analyse a trace (from a sandbox step) into a report."""

    kind: Literal["analyze-trace"]


class CortStep(StepBase):
    """Reason with CoRT (chain of recursive thoughts) for N rounds."""

    kind: Literal["cort"]
    prompt: str | None = Field(default=None, description="What to reason about; the step's inputs follow it.")
    rounds: int = Field(default=3, ge=1, le=32)
    alternatives: int = Field(default=3, ge=1, le=16, description="Alternatives written per round.")


class VerifyStep(StepBase):
    """Verify against a YAML scenario file (relative to the spec)."""

    kind: Literal["verify"]
    scenario: str


class McpStep(StepBase):
    """Call a tool of the manifest's core: `<tool>` or `<tool>.<method>`."""

    kind: Literal["mcp"]
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class DelegateStep(StepBase):
    """Hand the work to another core, optionally running one of its manifests."""

    kind: Literal["delegate"]
    core: str
    manifest: str | None = None


Step = Annotated[
    SandboxStep | AnalyzeTraceStep | CortStep | VerifyStep | McpStep | DelegateStep,
    Field(discriminator="kind"),
]

STEP_OUTPUT: dict[str, ValueType] = {
    "sandbox": "trace",
    "analyze-trace": "report",
    "cort": "report",
    "verify": "verdict",
    "mcp": "json",
    "delegate": "json",
}
STEP_INPUT_TYPES: dict[str, dict[str, ValueType]] = {"analyze-trace": {"trace": "trace"}}


class ManifestOutput(SpecModel):
    type: ValueType
    source: str = Field(alias="from", description="`steps.<id>` whose output this is.")


class Manifest(SpecModel):
    """A logic manifest: a typed multi-step recipe that a core follows, validated as a DAG."""

    core: str = Field(description="The core that runs this manifest.")
    description: str = ""
    inputs: dict[str, ValueType] = Field(default_factory=dict)
    outputs: dict[str, ManifestOutput] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)


# -- consensus, mesh, memory -----------------------------------------------------------------------
class ElectionTimeout(SpecModel):
    min_ms: int = Field(default=150, ge=10, le=60_000)
    max_ms: int = Field(default=300, ge=10, le=60_000)

    @model_validator(mode="after")
    def _ordered(self) -> ElectionTimeout:
        if self.min_ms >= self.max_ms:
            raise invalid("`minMs` must be below `maxMs` (Raft randomises in between)")
        return self


class Snapshot(SpecModel):
    every_entries: int = Field(default=10_000, ge=100)
    keep: int = Field(default=2, ge=1, le=100)


class Consensus(SpecModel):
    """Raft over the pools whose roles include `voter`."""

    election_timeout: ElectionTimeout = Field(default_factory=ElectionTimeout)
    heartbeat_ms: int = Field(default=50, ge=5, le=10_000)
    snapshot: Snapshot = Field(default_factory=Snapshot)

    @model_validator(mode="after")
    def _heartbeat_below_election(self) -> Consensus:
        if self.heartbeat_ms * 2 > self.election_timeout.min_ms:
            raise invalid(
                "`heartbeatMs` must be at most half of `electionTimeout.minMs`, or followers "
                "start elections while the leader is healthy"
            )
        return self


class Ports(SpecModel):
    mesh: Port = 7946
    raft: Port = 7100
    grpc: Port = 7443
    metrics: Port = 9100


class Mesh(SpecModel):
    discovery: Literal["auto", "dns", "mdns"] = Field(
        default="auto", description="auto: DNS seeds in Kubernetes, mDNS on a LAN."
    )
    neighbours: int = Field(default=30, ge=1, le=1000)
    ports: Ports = Field(default_factory=Ports)


class KvCapacity(SpecModel):
    """Exactly one of: a block count, a byte size, or a fraction of each node's GPU memory."""

    blocks: int | None = Field(default=None, ge=1)
    bytes: Quantity | None = None
    gpu_fraction: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> KvCapacity:
        given = [v for v in (self.blocks, self.bytes, self.gpu_fraction) if v is not None]
        if len(given) != 1:
            raise invalid("the capacity has exactly one of `blocks`, `bytes` and `gpuFraction`")
        return self


class Kv(SpecModel):
    """The KV_v2 paged KV cache."""

    block_size: Literal[8, 16, 32, 64, 128] = 16
    bytes_per_token: Quantity = Field(default="128Ki", description="KV bytes per token of the served model.")
    capacity: KvCapacity = Field(default_factory=lambda: KvCapacity(blocks=16_384))
    eviction: Literal["lru", "lfu", "priority", "ttl"] = "lru"
    ttl: Duration | None = None


class Memory(SpecModel):
    kv: Kv = Field(default_factory=Kv)
    decay_half_life: Duration = Field(default="72h", description="Half-life of agent memory decay.")


# -- firewall and sovereignty -------------------------------------------------------------------------
class Endpoint(SpecModel):
    """One of: a pool, the pools running a core, the whole swarm, or external CIDRs."""

    pool: str | None = None
    core: str | None = None
    swarm: bool | None = None
    cidrs: list[Cidr] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Endpoint:
        given = [v for v in (self.pool, self.core, self.swarm, self.cidrs) if v is not None]
        if len(given) != 1:
            raise invalid("an endpoint has exactly one of `pool`, `core`, `swarm` and `cidrs`")
        return self


class PortRule(SpecModel):
    port: Port
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class FirewallRule(SpecModel):
    name: DnsLabel
    source: Endpoint = Field(alias="from")
    to: Endpoint
    ports: list[PortRule] = Field(min_length=1)
    reason: str = ""


# Where the API server of most clusters is: inside the cluster's private address space, on 443 (managed
# clusters, the `kubernetes` Service) or 6443 (kubeadm and most self-managed ones).
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
API_SERVER_PORTS = (443, 6443)


class KubernetesApi(SpecModel):
    """The Kubernetes API server as the voters reach it (they admit joiners and follow the pools'
    replica counts through it): one egress rule, since a NetworkPolicy cannot name the API server.
    Policies see the server's own address and port (after the `kubernetes` Service's translation):
    `kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes` shows them."""

    cidrs: list[Cidr] = Field(
        default_factory=lambda: list(PRIVATE_RANGES),
        min_length=1,
        description="The API server's addresses; by default the private IPv4 ranges.",
    )
    ports: list[Port] = Field(
        default_factory=lambda: list(API_SERVER_PORTS), min_length=1, description="The API server's ports."
    )


class Firewall(SpecModel):
    default: Literal["deny"] = Field(default="deny", description="Everything not allowed is denied.")
    rules: list[FirewallRule] = Field(default_factory=list)
    kubernetes_api: KubernetesApi = Field(default_factory=KubernetesApi)


class SecretRef(SpecModel):
    """A Kubernetes Secret that exists in the namespace; pyagent never renders secret values."""

    name: DnsLabel
    key: str


class PersonalData(SpecModel):
    jurisdictions: list[Jurisdiction] = Field(min_length=1)


class Soul(SpecModel):
    encrypt_to: Literal["owner"] = "owner"
    secret_ref: SecretRef


class Peers(SpecModel):
    share: Literal["work-payloads"] = "work-payloads"
    trusted: list[PublicKey] = Field(default_factory=list)


class Sovereignty(SpecModel):
    personal_data: PersonalData | None = None
    soul: Soul | None = None
    peers: Peers = Field(default_factory=Peers)


# -- policy waivers ----------------------------------------------------------------------------------
class Waiver(SpecModel):
    """A reviewed, dated exception to one policy rule for one object (`pyagent policy check`)."""

    rule_id: str = Field(pattern=r"^PA5[0-9]{2}$", description="The rule waived, e.g. PA511.")
    object: str = Field(
        min_length=1,
        description="What it applies to: a logical name (`networkpolicy/<name>`) or a spec path "
        "(`firewall.rules[0]`, `nodes.gateway`).",
    )
    reason: str = Field(min_length=1, description="Why the exception is acceptable; shown with the finding.")
    expires: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description="YYYY-MM-DD; after it, a finding.")

    @field_validator("expires")
    @classmethod
    def _real_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise invalid(f"not a calendar date: {value}") from None
        return value


# -- observability ------------------------------------------------------------------------------------
class Traces(SpecModel):
    """Every task as an OpenTelemetry trace, exported by the nodes that run it (docs/observability.md)."""

    endpoint: OtlpEndpoint = Field(
        description="The OTLP/gRPC receiver the nodes export to, http://host:port: usually an OpenTelemetry "
        "Collector beside the swarm (e.g. http://otel-collector.monitoring.svc:4317)."
    )
    collector_namespace: DnsLabel = Field(
        default="monitoring",
        description="The namespace the receiver runs in: the nodes may reach it on the endpoint's port "
        "(a NetworkPolicy).",
    )


class Observability(SpecModel):
    """How the swarm is watched. The Grafana dashboard is always emitted (a ConfigMap for Grafana's
    dashboard sidecar and dashboards/<name>.json); scraping objects are opt-in because they need
    the Prometheus Operator's CRDs in the cluster."""

    pod_monitors: bool = Field(
        default=False,
        description="Emit a Prometheus Operator PodMonitor per pool (needs the monitoring.coreos.com CRDs) "
        "and a NetworkPolicy that lets Prometheus reach the nodes' metrics port.",
    )
    prometheus_namespace: DnsLabel = Field(
        default="monitoring", description="The namespace Prometheus scrapes from (allowed to the metrics port)."
    )
    pod_monitor_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Extra labels on the PodMonitors, for a Prometheus whose podMonitorSelector needs them "
        "(kube-prometheus-stack: `release: <its Helm release>`).",
    )
    scrape_interval: Duration = Field(default="30s", description="How often Prometheus scrapes each node.")
    traces: Traces | None = Field(default=None, description="Export task traces over OTLP; off when absent.")


# -- environments ---------------------------------------------------------------------------------------
Tier = Literal["dev", "staging", "prod"]


class Environment(SpecModel):
    """An overlay over the base: `extends` first, then `file`, then `overrides`."""

    tier: Tier | None = Field(default=None, description="Strictness; defaults to the name if it is a tier, else prod.")
    extends: str | None = None
    file: str | None = Field(default=None, description="A YAML overlay file, relative to the spec.")
    overrides: dict[str, Any] = Field(default_factory=dict)

    def effective_tier(self, name: str) -> Tier:
        if self.tier is not None:
            return self.tier
        if name == "dev":
            return "dev"
        if name == "staging":
            return "staging"
        return "prod"


class Swarm(SpecModel):
    api_version: Literal["pyagent.dev/v1alpha1"]
    kind: Literal["Swarm"]
    metadata: Metadata
    image: Image = Field(default_factory=lambda: Image(build="native"))
    nodes: dict[DnsLabel, Pool] = Field(min_length=1, description="Node pools by name.")
    cores: dict[DnsLabel, Core] = Field(default_factory=dict)
    manifests: dict[DnsLabel, Manifest] = Field(default_factory=dict)
    consensus: Consensus = Field(default_factory=Consensus)
    mesh: Mesh = Field(default_factory=Mesh)
    memory: Memory = Field(default_factory=Memory)
    firewall: Firewall = Field(default_factory=Firewall)
    sovereignty: Sovereignty = Field(default_factory=Sovereignty)
    observability: Observability = Field(default_factory=Observability)
    waivers: list[Waiver] = Field(default_factory=list, description="Policy waivers (never rendered).")
    environments: dict[DnsLabel, Environment] = Field(default_factory=dict)
