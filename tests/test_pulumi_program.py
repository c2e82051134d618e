"""Each generated Pulumi program, run under Pulumi's official unit-test mocks, registers exactly
the plan's objects: the same logical names, the right pulumi_kubernetes types, the same properties."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.conftest import ROOT

STACKS = sorted(p.parent for p in (ROOT / "stacks").glob("*/*/__main__.py"))
TYPE_TOKENS = {
    "Namespace": "kubernetes:core/v1:Namespace",
    "ServiceAccount": "kubernetes:core/v1:ServiceAccount",
    "Role": "kubernetes:rbac.authorization.k8s.io/v1:Role",
    "RoleBinding": "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "ClusterRoleBinding": "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    "ConfigMap": "kubernetes:core/v1:ConfigMap",
    "Service": "kubernetes:core/v1:Service",
    "NetworkPolicy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "PodDisruptionBudget": "kubernetes:policy/v1:PodDisruptionBudget",
    "StatefulSet": "kubernetes:apps/v1:StatefulSet",
    "PodMonitor": "kubernetes:monitoring.coreos.com/v1:PodMonitor",
}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: dict[str, tuple[str, dict[str, Any]]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered[args.name] = (args.typ, dict(args.inputs))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def as_mock_sees_it(value: Any) -> Any:
    """Mock inputs arrive as JSON-like data with every number a float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [as_mock_sees_it(v) for v in value]
    return {k: as_mock_sees_it(v) for k, v in value.items()}


def run_program(stack: Path) -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="pyagent-test", stack=stack.name, preview=False)

    @pulumi.runtime.test  # type: ignore[misc]
    def program() -> pulumi.Output[Any]:
        namespace = runpy.run_path(str(stack / "__main__.py"), run_name="__main__")
        resources = namespace["RESOURCES"]
        return pulumi.Output.all(*[r.urn for r in resources.values()])

    program()
    return mocks


@pytest.mark.parametrize("stack", STACKS, ids=[f"{p.parent.name}/{p.name}" for p in STACKS])
def test_program_registers_exactly_the_plan(stack: Path) -> None:
    plan = json.loads((stack / "plan.json").read_text())
    mocks = run_program(stack)
    expected = {o["logicalName"]: o["object"] for o in plan["objects"]}
    assert set(mocks.registered) == set(expected)
    for name, body in expected.items():
        typ, inputs = mocks.registered[name]
        assert typ == TYPE_TOKENS[body["kind"]], name
        assert inputs == as_mock_sees_it(body), name


def test_a_changed_plan_changes_what_is_registered(tmp_path: Path) -> None:
    source = next(s for s in STACKS if s.parent.name == "laptop")
    for item in ("__main__.py", "plan.json"):
        (tmp_path / item).write_bytes((source / item).read_bytes())
    plan = json.loads((tmp_path / "plan.json").read_text())
    dropped = plan["objects"].pop()
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    mocks = run_program(tmp_path)
    assert dropped["logicalName"] not in mocks.registered
    assert len(mocks.registered) == len(plan["objects"])
