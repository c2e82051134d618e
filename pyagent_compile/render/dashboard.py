"""The Grafana dashboard as a file of its own (dashboards/<name>.json), for importing by hand or
provisioning from disk; the same JSON the dashboard ConfigMap carries."""

from __future__ import annotations

from pyagent_compile.canonical import to_json
from pyagent_compile.plan.dashboard import DASHBOARD_FILE, dashboard_name
from pyagent_compile.plan.model import Plan


def render_dashboard(plan: Plan) -> dict[str, str]:
    if plan.dashboard is None:
        return {}
    return {DASHBOARD_FILE.format(name=dashboard_name(plan.swarm, plan.environment)): to_json(plan.dashboard)}
