"""The Grafana dashboard and the scraping objects of the compiled stacks: one dashboard JSON in
two places (the file and the sidecar's ConfigMap), only metrics the daemon really exports, and
PodMonitors exactly when the spec asks for them. tests/integration/test_prometheus.py runs every
panel's query against a real Prometheus scraping a real swarm."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pyagent_compile.plan.dashboard import PANELS, ROWS, dashboard_json, dashboard_uid, panel_queries
from tests.conftest import ROOT

POD_MONITOR_CRD = ROOT / "tests" / "data" / "crds" / "monitoring.coreos.com_podmonitors.yaml"
NODE_SRC = ROOT / "native" / "crates" / "pyagent-node" / "src"
STACKS = sorted(p.parent for p in (ROOT / "stacks").glob("*/*/plan.json"))
# Series Prometheus adds to every target itself.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds"}


def exported_metrics() -> set[str]:
    """The metric names the daemon's source writes into /metrics."""
    names: set[str] = set()
    for source in NODE_SRC.rglob("*.rs"):
        names.update(re.findall(r'"((?:pyagent|process)_[a-z0-9_]+)', source.read_text()))
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b([a-z_][a-z0-9_]*)\{", expr))


def test_every_panel_queries_only_metrics_the_daemon_exports() -> None:
    exported = exported_metrics()
    assert {"pyagent_raft_term", "pyagent_tasks", "pyagent_workers"} <= exported
    for title, expr in panel_queries(dashboard_json("s", "dev", "s-dev")):
        for name in metric_names(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in PROMETHEUS_SERIES or base in exported, f"{title}: {name} is not exported"


def test_the_dashboard_has_a_row_per_area_and_every_panel_once() -> None:
    dashboard = dashboard_json("s", "dev", "s-dev")
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == list(ROWS)
    titles = [p["title"] for p in dashboard["panels"] if p["type"] != "row"]
    assert titles == [s.title for row in ROWS for s in PANELS if s.row == row]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_queries_select_the_swarm_by_the_namespace_variable() -> None:
    dashboard = dashboard_json("s", "dev", "s-dev")
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "namespace")
    assert variable["current"]["value"] == "s-dev"
    for title, expr in panel_queries(dashboard):
        assert 'namespace="$namespace"' in expr, title


def test_the_uid_fits_grafanas_limit() -> None:
    assert len(dashboard_uid("a" * 63, "staging")) <= 40
    assert dashboard_uid("a" * 63, "staging") != dashboard_uid("a" * 63, "prod")


def test_each_kubernetes_stack_carries_the_same_dashboard_in_its_file_and_configmap() -> None:
    assert STACKS
    for stack in STACKS:
        (file,) = (stack / "dashboards").glob("*.json")
        (config,) = (stack / "manifests").glob("05-configmap-*-dashboard.yaml")
        body = yaml.safe_load(config.read_text())
        assert body["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(body["data"][file.name]) == json.loads(file.read_text()), stack


def test_pod_monitors_only_where_the_spec_asks() -> None:
    with_monitor = {s.relative_to(ROOT / "stacks").as_posix() for s in STACKS if _pod_monitors(s)}
    assert with_monitor == {"research/prod"}
    (monitor,) = _pod_monitors(ROOT / "stacks" / "research" / "prod")
    body = yaml.safe_load(monitor.read_text())
    assert body["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert body["spec"]["podMetricsEndpoints"] == [{"interval": "30s", "path": "/metrics", "port": "metrics"}]
    assert body["spec"]["selector"] == {"matchLabels": {"pyagent.dev/swarm": "research"}}
    policy = yaml.safe_load(
        (ROOT / "stacks/research/prod/manifests/06-networkpolicy-research-allow-metrics.yaml").read_text()
    )
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 9100, "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_the_pod_monitor_port_is_a_named_container_port() -> None:
    statefulsets = sorted((ROOT / "stacks/research/prod/manifests").glob("09-statefulset-*.yaml"))
    for path in statefulsets:
        (container,) = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]["containers"]
        assert "metrics" in {p["name"] for p in container["ports"]}, path


def _pod_monitors(stack: Path) -> list[Path]:
    return sorted((stack / "manifests").glob("*-podmonitor-*.yaml"))


def strict(schema: Any) -> Any:
    """The CRD's schema with unknown fields refused, as kubernetes-validate's strict mode does for
    built-in kinds (the API server would prune them silently: a typo would just vanish)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def pod_monitor_schema() -> Any:
    crd = yaml.safe_load(POD_MONITOR_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    # apiVersion/kind/metadata are the API server's; the CRD leaves metadata open.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def test_the_pod_monitor_is_valid_against_the_operators_crd() -> None:
    schema = pod_monitor_schema()
    for stack in STACKS:
        for path in _pod_monitors(stack):
            jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_the_crd_schema_check_does_reject_a_typo() -> None:
    (path,) = _pod_monitors(ROOT / "stacks" / "research" / "prod")
    body = yaml.safe_load(path.read_text())
    body["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, pod_monitor_schema())


def test_each_local_stack_has_a_valid_scrape_config_and_the_same_dashboard() -> None:
    for local in sorted((ROOT / "stacks").glob("*/local")):
        nodes = json.loads((local / "local.json").read_text())["nodes"]
        config = yaml.safe_load((local / "prometheus.yml").read_text())
        (job,) = config["scrape_configs"]
        targets = {t["labels"]["pod"]: t["targets"] for t in job["static_configs"]}
        assert targets == {n["name"]: [f"127.0.0.1:{n['ports']['metrics']}"] for n in nodes}, local
        namespace = {t["labels"]["namespace"] for t in job["static_configs"]}
        (board,) = (local / "dashboards").glob("*.json")
        dashboard = json.loads(board.read_text())
        variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "namespace")
        assert namespace == {variable["current"]["value"]}, local
        kubernetes = json.loads(next(local.parent.glob("[!l]*/dashboards/*.json")).read_text())
        assert panel_queries(dashboard) == panel_queries(kubernetes)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed: run .ci/install-prometheus.sh")
def test_promtool_accepts_each_local_scrape_config() -> None:
    for config in sorted((ROOT / "stacks").glob("*/local/prometheus.yml")):
        done = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


# -- observability.traces ---------------------------------------------------------------------------
def _node_configs(stack: Path) -> list[dict[str, Any]]:
    configs = []
    for manifest in sorted((stack / "manifests").glob("05-configmap-*-config.yaml")):
        body = yaml.safe_load(manifest.read_text())
        configs.append(json.loads(body["data"]["node.json"]))
    for node in sorted((stack / "nodes").glob("*.json")):
        configs.append(json.loads(node.read_text()))
    return configs


def test_traces_reach_every_node_and_the_network_policy_only_where_the_spec_asks() -> None:
    stacks = sorted(p.parent for p in (ROOT / "stacks").glob("*/*/.pyagent-stack.json"))
    with_traces = set()
    for stack in stacks:
        configs = _node_configs(stack)
        assert configs, stack
        endpoints = {json.dumps(c["traces"]) for c in configs}
        assert len(endpoints) == 1, (stack, endpoints)  # every node of a stack alike
        if configs[0]["traces"] is not None:
            with_traces.add(stack.relative_to(ROOT / "stacks").as_posix())
            assert configs[0]["traces"] == {"otlpEndpoint": "http://otel-collector.monitoring.svc:4317"}
        policy = stack / "manifests" / f"06-networkpolicy-{stack.parent.name}-allow-otlp.yaml"
        assert policy.exists() == (configs[0]["traces"] is not None), stack
    assert with_traces == {"research/prod"}
    body = yaml.safe_load(
        (ROOT / "stacks/research/prod/manifests/06-networkpolicy-research-allow-otlp.yaml").read_text()
    )
    assert body["spec"]["policyTypes"] == ["Egress"]
    assert body["spec"]["podSelector"] == {"matchLabels": {"pyagent.dev/swarm": "research"}}
    (rule,) = body["spec"]["egress"]
    assert rule["ports"] == [{"port": 4317, "protocol": "TCP"}]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


TRACES_SPEC = """\
apiVersion: pyagent.dev/v1alpha1
kind: Swarm
metadata:
  name: traced
nodes:
  agents:
    replicas: 1
    roles: [voter, worker]
    hardware: {{cpu: 2, memory: 4Gi}}
observability:
  traces: {traces}
environments:
  dev: {{}}
"""


@pytest.mark.parametrize(
    ("traces", "code", "col"),
    [
        # The node speaks plain OTLP/gRPC to a collector beside it: https is the collector's job.
        ("{endpoint: 'https://collector:4317'}", "PA206", 22),
        ("{endpoint: 'http://collector'}", "PA206", 22),
        ("{endpoint: 'http://collector:4317/v1/traces'}", "PA206", 22),
        ("{endpoint: 'http://collector:70000'}", "PA206", 22),
        ("{endpoint: 'http://c:4317', collectorNamespace: Monitoring}", "PA206", 59),
        ("{endpoint: 'http://c:4317', sampling: 1}", "PA201", 39),
        ("{collectorNamespace: monitoring}", "PA202", 3),
    ],
)
def test_bad_traces_settings_are_located(tmp_path: Path, traces: str, code: str, col: int) -> None:
    from pyagent_compile.pipeline import compile_spec

    spec = tmp_path / "swarm.yaml"
    spec.write_text(TRACES_SPEC.format(traces=traces), encoding="utf-8")
    result = compile_spec(spec, "swarm.yaml")
    found = [(d.code, d.primary.span.line, d.primary.span.col) for d in result.diagnostics if d.primary]
    assert found == [(code, 11, col)], [(d.code, d.message) for d in result.diagnostics]
