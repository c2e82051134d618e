"""The Pulumi stack: a small program that registers exactly the plan's objects with
pulumi_kubernetes, its project and stack files, and pinned requirements."""

from __future__ import annotations

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pyagent_compile import __version__, resources
from pyagent_compile.canonical import to_json
from pyagent_compile.plan.dashboard import DASHBOARD_FILE, dashboard_name
from pyagent_compile.plan.model import Plan

# The versions the generated program is tested against (tests/test_pulumi_program.py).
PULUMI_VERSION = "3.272.0"
PULUMI_KUBERNETES_VERSION = "4.34.2"
TEMPLATES = resources.templates("stack")

# kind -> (pulumi_kubernetes module path, class name): the program's dispatch table.
RESOURCE_CLASSES = {
    "Namespace": ("core.v1", "Namespace"),
    "ServiceAccount": ("core.v1", "ServiceAccount"),
    "Role": ("rbac.v1", "Role"),
    "RoleBinding": ("rbac.v1", "RoleBinding"),
    "ClusterRoleBinding": ("rbac.v1", "ClusterRoleBinding"),
    "ConfigMap": ("core.v1", "ConfigMap"),
    "Service": ("core.v1", "Service"),
    "NetworkPolicy": ("networking.v1", "NetworkPolicy"),
    "PodDisruptionBudget": ("policy.v1", "PodDisruptionBudget"),
    "StatefulSet": ("apps.v1", "StatefulSet"),
    # Custom resources (their CRDs come from an operator, not from pulumi_kubernetes' schema).
    "PodMonitor": ("apiextensions", "CustomResource"),
}
CUSTOM_KINDS = ("PodMonitor",)


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
    )


def project_name(plan: Plan) -> str:
    return f"pyagent-{plan.swarm}"


def render_pulumi(plan: Plan) -> dict[str, str]:
    env = _environment()
    context = {
        "swarm": plan.swarm,
        "env": plan.environment,
        "tier": plan.tier,
        "namespace": plan.namespace,
        "project": project_name(plan),
        "pyagent_version": __version__,
        "pulumi_version": PULUMI_VERSION,
        "pulumi_kubernetes_version": PULUMI_KUBERNETES_VERSION,
        "classes": sorted(RESOURCE_CLASSES.items()),
        "custom_kinds": CUSTOM_KINDS,
        "objects": [(o.logical_name, o.kind) for o in plan.objects],
        "dashboard_file": DASHBOARD_FILE.format(name=dashboard_name(plan.swarm, plan.environment)),
        "pod_monitors": any(o.kind in CUSTOM_KINDS for o in plan.objects),
    }
    return {
        "Pulumi.yaml": env.get_template("Pulumi.yaml.j2").render(context),
        f"Pulumi.{plan.environment}.yaml": env.get_template("Pulumi.stack.yaml.j2").render(context),
        "__main__.py": env.get_template("__main__.py.j2").render(context),
        "requirements.txt": env.get_template("requirements.txt.j2").render(context),
        "README.md": env.get_template("README.md.j2").render(context),
        "plan.json": to_json(plan.to_json()),
    }
