"""The plan: the complete, resolved set of objects for one environment. The single source
that the Kubernetes manifests and the Pulumi program are both rendered from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyagent_compile.contracts.node_config import NodeConfig
from pyagent_compile.load.document import PathT, format_path
from pyagent_compile.plan.naming import PLAN_API_VERSION, logical_name

# Apply order: what others refer to comes first (kubectl applies a folder in name order).
KIND_ORDER = (
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "NetworkPolicy",
    "Service",
    "PodDisruptionBudget",
    "StatefulSet",
    # A custom resource: it needs the Prometheus Operator's CRDs, so it comes last and nothing
    # else depends on it.
    "PodMonitor",
)


@dataclass(frozen=True)
class PlannedObject:
    body: dict[str, Any]
    source: PathT

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def logical_name(self) -> str:
        return logical_name(self.kind, self.name)

    def sort_key(self) -> tuple[int, str]:
        return (KIND_ORDER.index(self.kind), self.name)


@dataclass(frozen=True)
class ImageBuild:
    image: str
    ports: dict[str, int]


@dataclass(frozen=True)
class Plan:
    swarm: str
    environment: str
    tier: str
    namespace: str
    objects: tuple[PlannedObject, ...]
    node_configs: dict[str, NodeConfig]
    # The node image to build from native/ (`image: {build: native}`), with the ports it exposes;
    # None when the spec names a prebuilt image.
    image_build: ImageBuild | None = None
    # The Grafana dashboard's JSON model: rendered as dashboards/<name>.json and carried by the
    # dashboard ConfigMap among `objects`, from this one value.
    dashboard: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "apiVersion": PLAN_API_VERSION,
            "swarm": self.swarm,
            "environment": self.environment,
            "tier": self.tier,
            "namespace": self.namespace,
            "objects": [
                {"logicalName": o.logical_name, "source": format_path(o.source), "object": o.body} for o in self.objects
            ],
        }
