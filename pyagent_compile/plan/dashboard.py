"""The swarm's Grafana dashboard, built with Grafana's own `grafana-foundation-sdk` builders.

Every panel queries a metric the node daemon exports today (`/metrics` of `pyagent-node`:
native/crates/pyagent-node/src/http.rs, metrics.rs, work/metrics.rs) and nothing it does not:
tests/integration/test_prometheus.py evaluates each panel's PromQL in a real Prometheus that
scrapes a real local swarm and fails on a panel without data. The panels are data (PANELS), so
a reader sees the whole dashboard in one table; `dashboard_json` turns them into the JSON model
Grafana loads.

Queries select the swarm by the `namespace` label, the one a Prometheus Operator PodMonitor (or
any Kubernetes service discovery) gives every target; the variable defaults to the stack's
namespace and can be changed in Grafana (e.g. for a Prometheus that labels the targets itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableHide, VariableOption

from pyagent_compile.plan import naming

# Selector of one swarm's targets; `$namespace` is the dashboard variable below.
SEL = 'namespace="$namespace"'
# Grafana picks a window of at least four scrape intervals for rate().
RATE = "$__rate_interval"
DASHBOARD_FILE = "dashboards/{name}.json"
# The label Grafana's dashboard sidecar (kube-prometheus-stack, the Grafana Helm chart) watches.
SIDECAR_LABEL = "grafana_dashboard"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class PanelSpec:
    row: str
    title: str
    kind: Literal["stat", "timeseries"]
    queries: tuple[Query, ...]
    description: str
    unit: str = "short"


def _q(expr: str, legend: str = "") -> tuple[Query, ...]:
    return (Query(expr, legend),)


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Raft", "Leader", "stat", _q(f"max(pyagent_raft_leader_id{{{SEL}}})"), "The node id of the leader (0: none)."
    ),
    PanelSpec("Raft", "Term", "stat", _q(f"max(pyagent_raft_term{{{SEL}}})"), "The highest Raft term any node is in."),
    PanelSpec(
        "Raft",
        "Nodes that believe they lead",
        "stat",
        _q(f"sum(pyagent_raft_is_leader{{{SEL}}})"),
        "More than 1 for longer than an election means a partition the old leader has not noticed yet.",
    ),
    PanelSpec(
        "Raft",
        "Members",
        "stat",
        _q(f'max(pyagent_raft_members{{{SEL},voter="true"}})', "voters"),
        "Voters in the current Raft membership.",
    ),
    PanelSpec(
        "Raft",
        "Commit and applied index",
        "timeseries",
        (
            Query(f"pyagent_raft_commit_index{{{SEL}}}", "committed {{pod}}"),
            Query(f"pyagent_raft_applied_index{{{SEL}}}", "applied {{pod}}"),
        ),
        "Per node: the highest index known committed and the highest applied to the state machine.",
    ),
    PanelSpec(
        "Raft",
        "Apply lag",
        "timeseries",
        _q(f"pyagent_raft_commit_index{{{SEL}}} - pyagent_raft_applied_index{{{SEL}}}", "{{pod}}"),
        "Committed entries a node has not applied yet; a node that stays behind is stuck.",
    ),
    PanelSpec(
        "Raft",
        "Proposals committed",
        "timeseries",
        _q(f"sum by (outcome) (rate(pyagent_commands_total{{{SEL}}}[{RATE}]))", "{{outcome}}"),
        "Client commands committed per second, applied or refused by the state machine.",
        unit="ops",
    ),
    PanelSpec(
        "Raft",
        "Commit latency p50 / p99",
        "timeseries",
        (
            Query(
                f"histogram_quantile(0.5, sum by (le) (rate(pyagent_commit_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
                "p50",
            ),
            Query(
                f"histogram_quantile(0.99, sum by (le) (rate(pyagent_commit_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
                "p99",
            ),
        ),
        "From proposal to applied on the leader.",
        unit="s",
    ),
    PanelSpec(
        "Tasks",
        "Tasks by state",
        "timeseries",
        _q(f"max by (state) (pyagent_tasks{{{SEL}}})", "{{state}}"),
        "The replicated task table (the same on every node), by state.",
    ),
    PanelSpec(
        "Tasks",
        "Running tasks by owner",
        "timeseries",
        _q(f"pyagent_tasks_owned{{{SEL}}}", "{{pod}}"),
        "Running tasks each node owns (executes).",
    ),
    PanelSpec(
        "Tasks",
        "Step duration p95 by kind",
        "timeseries",
        _q(
            "histogram_quantile(0.95, sum by (kind, le) "
            f"(rate(pyagent_step_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
            "{{kind}}",
        ),
        "How long step attempts take, by kind (sandbox, mcp, cort, verify, analyze-trace, delegate), on the workers.",
        unit="s",
    ),
    PanelSpec(
        "Tasks",
        "Step attempts by outcome",
        "timeseries",
        _q(
            f"sum by (kind, outcome) (rate(pyagent_step_duration_seconds_count{{{SEL}}}[{RATE}]))",
            "{{kind}} {{outcome}}",
        ),
        "Step attempts per second by kind and outcome (succeeded, failed, timed_out); retries count each.",
        unit="ops",
    ),
    PanelSpec(
        "Tasks",
        "Sandbox kills by reason",
        "timeseries",
        _q(f"sum by (reason) (rate(pyagent_sandbox_kills_total{{{SEL}}}[{RATE}]))", "{{reason}}"),
        "Sandboxed commands killed per second: past their step's timeout (wall_clock), by the OOM killer at "
        "their memory limit (memory), or with their task cancelled or moved (cancelled).",
        unit="ops",
    ),
    PanelSpec(
        "Tasks",
        "Workers",
        "stat",
        _q(f"max(pyagent_workers{{{SEL}}})"),
        "Nodes registered as workers in the replicated table.",
    ),
    PanelSpec(
        "Tasks",
        "Sandbox isolation",
        "stat",
        _q(f"pyagent_sandbox_isolation{{{SEL}}}", "{{pod}} {{level}}"),
        "What each worker's sandboxed steps really get: 2 namespaces, 1 landlock_seccomp, 0 limits_only.",
    ),
    PanelSpec(
        "KV_v2",
        "KV_v2 blocks used",
        "timeseries",
        (
            Query(f"sum(pyagent_kv_blocks_used{{{SEL}}})", "used"),
            Query(f"sum(pyagent_kv_blocks_total{{{SEL}}})", "configured"),
        ),
        "Paged KV-cache blocks in use and configured, over all nodes.",
    ),
    PanelSpec(
        "KV_v2",
        "KV_v2 engine linked",
        "stat",
        _q(f"min(pyagent_kv_available{{{SEL}}})"),
        "1 when every node has the KV_v2 engine linked in.",
    ),
    PanelSpec(
        "Mesh",
        "Mesh peers",
        "timeseries",
        _q(f"pyagent_mesh_peers{{{SEL}}}", "{{pod}}"),
        "Members each node holds a mesh connection with (at most mesh.neighbours; docs/mesh.md).",
    ),
    PanelSpec(
        "Mesh",
        "Mesh messages published",
        "timeseries",
        _q(f"sum by (topic) (rate(pyagent_mesh_messages_published_total{{{SEL}}}[{RATE}]))", "{{topic}}"),
        "Messages the nodes published on the mesh's topics (events, feed, keys), sealed end to end.",
        unit="ops",
    ),
    PanelSpec(
        "Process",
        "Nodes up",
        "stat",
        _q(f"sum(up{{{SEL}}})"),
        "Targets Prometheus scraped successfully the last time.",
    ),
    PanelSpec(
        "Process",
        "Node versions",
        "stat",
        _q(f"count by (version) (pyagent_node_info{{{SEL}}})", "{{version}}"),
        "Nodes by daemon version (more than one during a rolling update).",
    ),
    PanelSpec(
        "Process",
        "CPU",
        "timeseries",
        _q(f"rate(process_cpu_seconds_total{{{SEL}}}[{RATE}])", "{{pod}}"),
        "CPU seconds per second each node's daemon uses (user and system; 1 = one core).",
        unit="percentunit",
    ),
    PanelSpec(
        "Process",
        "Resident memory",
        "timeseries",
        _q(f"process_resident_memory_bytes{{{SEL}}}", "{{pod}}"),
        "Each daemon's resident memory (the KV_v2 pool's metadata, the Raft log's cache, the mesh).",
        unit="bytes",
    ),
    PanelSpec(
        "Process",
        "Open file descriptors",
        "timeseries",
        _q(f"process_open_fds{{{SEL}}} / process_max_fds{{{SEL}}}", "{{pod}}"),
        "Open file descriptors as a share of the daemon's limit: connections, log and snapshot files.",
        unit="percentunit",
    ),
    PanelSpec(
        "Process",
        "Raft log size",
        "timeseries",
        _q(f"pyagent_log_bytes{{{SEL}}}", "{{pod}}"),
        "Size of each node's on-disk Raft log.",
        unit="bytes",
    ),
    PanelSpec(
        "Process",
        "Log fsyncs",
        "timeseries",
        _q(f"rate(pyagent_log_fsyncs_total{{{SEL}}}[{RATE}])", "{{pod}}"),
        "fdatasync calls per second (one per group commit).",
        unit="ops",
    ),
    PanelSpec(
        "Process",
        "Rejected messages",
        "timeseries",
        _q(
            f"sum by (channel, reason) (rate(pyagent_rejected_messages_total{{{SEL}}}[{RATE}]))",
            "{{channel}} {{reason}}",
        ),
        "Messages refused by signature, membership or replay checks; non-zero means a stranger or a bug.",
        unit="ops",
    ),
    PanelSpec(
        "Process",
        "Scrape duration",
        "timeseries",
        _q(f"scrape_duration_seconds{{{SEL}}}", "{{pod}}"),
        "How long Prometheus takes to read each node's /metrics.",
        unit="s",
    ),
)

ROWS = ("Raft", "Tasks", "KV_v2", "Mesh", "Process")


def dashboard_uid(swarm: str, env: str) -> str:
    # Grafana limits uids to 40 characters; DNS labels are at most 63, so long names are cut.
    return naming.fit(f"pyagent-{swarm}-{env}", 40)


def dashboard_name(swarm: str, env: str) -> str:
    return f"pyagent-{swarm}-{env}"


def _datasource() -> DataSourceRef:
    return DataSourceRef(type_val="prometheus", uid="${datasource}")


def _panel(spec: PanelSpec) -> stat.Panel | timeseries.Panel:
    panel: stat.Panel | timeseries.Panel = stat.Panel() if spec.kind == "stat" else timeseries.Panel()
    panel.title(spec.title).description(spec.description).unit(spec.unit).datasource(_datasource())
    panel.span(6 if spec.kind == "stat" else 12).height(4 if spec.kind == "stat" else 8)
    for index, query in enumerate(spec.queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index)).datasource(_datasource())
        if query.legend:
            target.legend_format(query.legend)
        panel.with_target(target)
    return panel


def _variables(namespace: str) -> list[Any]:
    datasource = gdash.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    current = VariableOption(selected=True, text=namespace, value=namespace)
    swarm = (
        gdash.CustomVariable("namespace")
        .label("Namespace")
        .description("The namespace label of the swarm's targets.")
        .values(namespace)
        .current(current)
        .options([current])
        .allow_custom_value(True)
        .hide(VariableHide.DONT_HIDE)
    )
    return [datasource, swarm]


def dashboard_json(swarm: str, env: str, namespace: str) -> dict[str, Any]:
    """The dashboard's JSON model, as plain data (canonically serialised by the caller)."""
    builder = (
        gdash.Dashboard(f"pyagent swarm {swarm} ({env})")
        .uid(dashboard_uid(swarm, env))
        .description(f"Raft, tasks, workers, sandboxes and KV_v2 of the pyagent swarm {swarm!r}, environment {env!r}.")
        .tags(["pyagent", f"swarm:{swarm}", f"env:{env}"])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
    )
    for variable in _variables(namespace):
        builder.with_variable(variable)
    # Explicit ids: Grafana would number them on load, and links to a panel (`viewPanel=`) must last.
    next_id = 1
    for row in ROWS:
        builder.with_row(gdash.Row(row).id(next_id))
        next_id += 1
        for spec in PANELS:
            if spec.row == row:
                builder.with_panel(_panel(spec).id(next_id))
                next_id += 1
    encoded: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return encoded


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel of a dashboard's JSON model."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel.get("type") != "row"
        for target in panel.get("targets", [])
    ]
