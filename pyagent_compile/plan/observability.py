"""What watches the swarm: the Grafana dashboard as a ConfigMap for Grafana's dashboard sidecar,
(with `observability.podMonitors`) a Prometheus Operator PodMonitor plus the NetworkPolicy
that lets Prometheus through the default deny to the nodes' metrics port, and (with
`observability.traces`) the NetworkPolicy that lets the nodes reach their OTLP receiver."""

from __future__ import annotations

from typing import Any

from pyagent_compile.canonical import to_json as canonical_json
from pyagent_compile.model.spec import Swarm
from pyagent_compile.model.types import otlp_port
from pyagent_compile.plan import labels, naming
from pyagent_compile.plan.dashboard import SIDECAR_LABEL, dashboard_json, dashboard_name
from pyagent_compile.plan.model import PlannedObject
from pyagent_compile.plan.network import policy_body
from pyagent_compile.plan.workloads import config_map, meta

POD_MONITOR_API = "monitoring.coreos.com/v1"


def dashboard_object(swarm: Swarm, env: str, ns: str, dashboard: dict[str, Any]) -> PlannedObject:
    file = f"{dashboard_name(swarm.metadata.name, env)}.json"
    body = config_map(swarm, env, ns, naming.dashboard_config(swarm.metadata.name), "observability", {})
    body["data"] = {file: canonical_json(dashboard)}
    # The sidecar loads every ConfigMap with this label (any value; "1" by convention).
    body["metadata"]["labels"][SIDECAR_LABEL] = "1"
    body["metadata"]["labels"]["app.kubernetes.io/component"] = "dashboard"
    return PlannedObject(body, ("observability",))


def pod_monitor_object(swarm: Swarm, env: str, ns: str) -> PlannedObject:
    obs = swarm.observability
    metadata = meta(swarm, env, naming.pod_monitor(swarm.metadata.name), "monitoring", "observability.podMonitors", ns)
    metadata["labels"].update(obs.pod_monitor_labels)
    body = {
        "apiVersion": POD_MONITOR_API,
        "kind": "PodMonitor",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": labels.swarm_selector(swarm)},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": obs.scrape_interval}],
        },
    }
    return PlannedObject(body, ("observability", "podMonitors"))


def metrics_policy_object(swarm: Swarm, env: str, ns: str) -> PlannedObject:
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": swarm.observability.prometheus_namespace}}
    }
    spec = {
        "podSelector": {"matchLabels": labels.swarm_selector(swarm)},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [prometheus], "ports": [{"port": swarm.mesh.ports.metrics, "protocol": "TCP"}]}],
    }
    body = policy_body(swarm, env, ns, "allow-metrics", "observability.prometheusNamespace", spec)
    return PlannedObject(body, ("observability", "prometheusNamespace"))


def traces_policy_object(swarm: Swarm, env: str, ns: str) -> PlannedObject | None:
    """Egress from every node to the receiver's namespace on the endpoint's port: through the
    default deny, and no further (not to the whole namespace, not to other ports)."""
    traces = swarm.observability.traces
    if traces is None:
        return None
    collector = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": traces.collector_namespace}}}
    spec = {
        "podSelector": {"matchLabels": labels.swarm_selector(swarm)},
        "policyTypes": ["Egress"],
        "egress": [{"to": [collector], "ports": [{"port": otlp_port(traces.endpoint), "protocol": "TCP"}]}],
    }
    body = policy_body(swarm, env, ns, "allow-otlp", "observability.traces", spec)
    return PlannedObject(body, ("observability", "traces"))


def observability_objects(swarm: Swarm, env: str, ns: str, dashboard: dict[str, Any]) -> list[PlannedObject]:
    objects = [dashboard_object(swarm, env, ns, dashboard)]
    if swarm.observability.pod_monitors:
        objects += [pod_monitor_object(swarm, env, ns), metrics_policy_object(swarm, env, ns)]
    traces = traces_policy_object(swarm, env, ns)
    if traces is not None:
        objects.append(traces)
    return objects


def build_dashboard(swarm: Swarm, env: str, ns: str) -> dict[str, Any]:
    return dashboard_json(swarm.metadata.name, env, ns)
