"""The real Pulumi engine (issue 20) against a real kube-apiserver without nodes: `pulumi up` of a
compiled stack, and the CrossGuard pack enforced by the engine, compared with `pyagent policy check`.

The engine is the Pulumi CLI v3.276.0 and the Kubernetes provider built from the Go module proxy by
tests/e2e/pulumi/tools.py (`make pulumi-tools`); the state is in a local file backend; the stack's
program runs on the SDKs it pins, through the Python SDK's own language runtime, which can add the
skipAwait annotation that a cluster without nodes needs (tests/e2e/pulumi/runtime.py). The API server
is etcd + kube-apiserver + kube-controller-manager on loopback with no node (tests/e2e/pulumi/
apiserver.py): objects are created and deleted for real, no pod runs. The stacks deployed with pods,
through the real language host, are tests/e2e/test_swarms.py's. docs/pulumi.md has the details and
timings.

Runs only with PYAGENT_E2E=1: in `make e2e` (and so in `make test` and CI, as root), or alone with
`make pulumi-test` (no root needed).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("PYAGENT_E2E") != "1":
    pytest.skip("end-to-end Pulumi tests run only with PYAGENT_E2E=1 (make pulumi-test)", allow_module_level=True)

from tests.e2e.cluster.procs import wait_until
from tests.e2e.pulumi import apiserver, runtime, tools, versions
from tests.e2e.pulumi.apiserver import ControlPlane
from tests.e2e.pulumi.engine import Engine
from tests.e2e.stacks import mandatory_violations

ROOT = tools.ROOT
STACK = ROOT / "stacks" / "laptop" / "dev"
POLICY_PACK = ROOT / "policies" / "pulumi"
PYAGENT = [sys.executable, "-m", "pyagent_compile"]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    tools.build_all()  # cached after the first time (`make pulumi-tools`)
    with apiserver.control_plane(tmp_path_factory.mktemp("control-plane")) as p:
        yield p


def engine_for(tmp_path: Path, plane: ControlPlane) -> Engine:
    return Engine(tmp_path / "pulumi", plane.kubeconfig)


def _discovery(plane: ControlPlane, api_version: str) -> list[dict[str, Any]]:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    status, body = plane.get(base)
    assert status == 200, f"discovery of {base}: {status}"
    return list(body["resources"])


def object_path(plane: ControlPlane, obj: dict[str, Any]) -> str:
    """The API path of a planned object, from the API server's own discovery (plural, namespaced)."""
    api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    resource = next(r for r in _discovery(plane, api_version) if r["kind"] == kind and "/" not in r["name"])
    ns = f"/namespaces/{meta['namespace']}" if resource["namespaced"] else ""
    return f"{base}{ns}/{resource['name']}/{meta['name']}"


def planned(stack: Path) -> list[dict[str, Any]]:
    return list(json.loads((stack / "plan.json").read_text())["objects"])


def pyagent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYAGENT, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_versions_are_the_pinned_ones(tmp_path: Path) -> None:
    """The CLI reports its tag; every compiled stack pins the SDKs that the project's .venv has."""
    tools.build_all()
    out = subprocess.run([str(tools.binaries()["pulumi"]), "version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == versions.PULUMI
    for req in sorted((ROOT / "stacks").glob("*/*/requirements.txt")):
        pins = dict(line.split("==") for line in req.read_text().split() if "==" in line)
        assert pins == {"pulumi": versions.PULUMI_SDK_PYTHON, "pulumi-kubernetes": versions.KUBERNETES_SDK_PYTHON}, req
    assert importlib.metadata.version("pulumi") == versions.PULUMI_SDK_PYTHON
    assert importlib.metadata.version("pulumi_kubernetes") == versions.KUBERNETES_SDK_PYTHON


def test_up_registers_every_planned_object_and_destroy_removes_them(tmp_path: Path, plane: ControlPlane) -> None:
    engine = engine_for(tmp_path, plane)
    stack = engine.copy_stack(STACK, "laptop-dev")
    objects = planned(stack)
    engine.pulumi(stack, "stack", "init", "dev")

    preview = json.loads(engine.pulumi(stack, "preview", "--json").stdout)
    creates = sorted(s["urn"].rsplit("::", 1)[1] for s in preview["steps"] if s["op"] == "create")
    # every planned object, under its logical name, plus the stack itself
    assert sorted({*creates} - {"pyagent-laptop-dev"}) == sorted(o["logicalName"] for o in objects)

    up = engine.pulumi(stack, "up", "--yes")
    for entry in objects:
        obj = entry["object"]
        status, live = plane.get(object_path(plane, obj))
        assert status == 200, f"{entry['logicalName']}: GET {status}"
        labels = obj["metadata"].get("labels") or {}
        assert labels.items() <= (live["metadata"].get("labels") or {}).items(), entry["logicalName"]
        if obj["kind"] == "ConfigMap":
            assert live.get("data") == obj.get("data"), entry["logicalName"]

    state = json.loads(engine.pulumi(stack, "stack", "export").stdout)["deployment"]
    assert state["manifest"]["version"] == versions.PULUMI
    # The SDK asks for a provider of its own version; the engine runs the one built here (ambient, on
    # PATH), which reports its own version, and says so.
    providers = [r for r in state["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert [p["inputs"].get("version") for p in providers] == [versions.KUBERNETES_SDK_PYTHON]
    mismatch = re.search(r"plugin kubernetes is expected to have version >=(\S+), but has (\S+?);", up.output)
    assert mismatch is not None and mismatch.groups() == (versions.KUBERNETES_SDK_PYTHON, versions.KUBERNETES_PROVIDER)
    outputs = json.loads(engine.pulumi(stack, "stack", "output", "--json").stdout)
    assert outputs["objects"] == sorted(o["logicalName"] for o in objects)

    engine.pulumi(stack, "preview", "--expect-no-changes")

    engine.pulumi(stack, "destroy", "--yes")
    for entry in objects:
        path = object_path(plane, entry["object"])
        wait_until(entry["logicalName"], engine.logs, lambda p=path: plane.get(p)[0] == 404, 120)  # type: ignore[misc]
    engine.pulumi(stack, "stack", "rm", "--yes", "dev")


def _pack_config(spec: Path, env: str, folder: Path) -> Path:
    out = pyagent("policy", "pack-config", str(spec), "--env", env)
    assert out.returncode == 0, out.stderr
    path = folder / f"crossguard-{env}.json"
    path.write_text(out.stdout)
    return path


COMMITTED = sorted(
    str(p.parent.relative_to(ROOT / "stacks"))
    for p in (ROOT / "stacks").glob("*/*/plan.json")
    if p.parent.name != "local"
)


@pytest.mark.parametrize("name", COMMITTED)
def test_policy_pack_and_pyagent_policy_check_agree_on_the_committed_stacks(
    name: str, tmp_path: Path, plane: ControlPlane
) -> None:
    """`pulumi preview --policy-pack` of every committed stack passes, as `pyagent policy check` does."""
    swarm, env = name.split("/")
    spec = ROOT / "examples" / swarm / "swarm.yaml"
    check = pyagent("policy", "check", str(spec), "--env", env)
    assert check.returncode == 0, check.stdout + check.stderr
    engine = engine_for(tmp_path, plane)
    engine.stack = env
    stack = engine.copy_stack(ROOT / "stacks" / name, f"{swarm}-{env}")
    config = _pack_config(spec, env, tmp_path)
    shim = runtime.policy_shim(tmp_path, POLICY_PACK)
    engine.pulumi(stack, "stack", "init", env)
    preview = engine.pulumi(stack, "preview", "--policy-pack", str(shim), "--policy-pack-config", str(config))
    assert "pyagent@v0.1.0" in preview.output and not mandatory_violations(preview.output), preview.output


def test_policy_pack_passes_a_clean_stack_like_pyagent_policy_check(tmp_path: Path, plane: ControlPlane) -> None:
    engine = engine_for(tmp_path, plane)
    stack = engine.copy_stack(STACK, "laptop-dev")
    spec = ROOT / "examples" / "laptop" / "swarm.yaml"
    config = _pack_config(spec, "dev", tmp_path)
    shim = runtime.policy_shim(tmp_path, POLICY_PACK)
    assert pyagent("policy", "check", str(spec), "--env", "dev").returncode == 0
    engine.pulumi(stack, "stack", "init", "dev")
    up = engine.pulumi(stack, "up", "--yes", "--policy-pack", str(shim), "--policy-pack-config", str(config))
    assert "pyagent" in up.output and not mandatory_violations(up.output), up.output
    engine.pulumi(stack, "destroy", "--yes")


TODAY = "2027-01-15"
WAIVER = """
waivers:
  - ruleId: PA502
    object: statefulset/sovereign-dublin
    reason: the dublin pool is moving back to the EU; reviewed by the data protection officer
    expires: "2027-01-31"
"""


def _sovereign_in_us(tmp_path: Path, waiver: str = "") -> Path:
    """examples/sovereign with pool `dublin` moved to a jurisdiction the owner does not allow (PA502),
    and `waiver` appended to the spec. Returns the spec file."""
    spec_dir = tmp_path / "sovereign"
    shutil.copytree(ROOT / "examples" / "sovereign", spec_dir)
    spec = spec_dir / "swarm.yaml"
    text = spec.read_text()
    moved = re.sub(r"(dublin:.*?jurisdiction: )EU", r"\1US", text, count=1, flags=re.S)
    assert moved != text and "\nwaivers:" not in text
    spec.write_text(moved + waiver)
    return spec


def _checked(spec: Path, today: str) -> tuple[int, dict[str, str]]:
    """`pyagent policy check` of staging: its exit code and {code: severity} of its diagnostics."""
    check = pyagent("policy", "check", str(spec), "--env", "staging", "--today", today, "--format", "json")
    assert check.returncode in (0, 1), check.stdout + check.stderr
    return check.returncode, {d["code"]: d["severity"] for d in json.loads(check.stdout)["diagnostics"]}


def _up_with_pack(tmp_path: Path, plane: ControlPlane, spec: Path, today: str) -> tuple[Engine, Path, Any]:
    """`pulumi up --yes --policy-pack policies/pulumi` of the spec's staging stack, compiled, with
    the pack configuration of `pyagent policy pack-config --today`."""
    compiled = pyagent("compile", str(spec), "--env", "staging", "--out", str(tmp_path / "stacks"))
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    engine = engine_for(tmp_path, plane)
    stack = engine.copy_stack(tmp_path / "stacks" / "sovereign" / "staging", "sovereign-staging")
    engine.stack = "staging"
    out = pyagent("policy", "pack-config", str(spec), "--env", "staging", "--today", today)
    assert out.returncode == 0, out.stderr
    config = tmp_path / "crossguard-staging.json"
    config.write_text(out.stdout)
    shim = runtime.policy_shim(tmp_path, POLICY_PACK)
    engine.pulumi(stack, "stack", "init", "staging")
    args = ("up", "--yes", "--policy-pack", str(shim), "--policy-pack-config", str(config))
    return engine, stack, engine.pulumi(stack, *args, check=False)


def test_policy_pack_blocks_a_sovereignty_violation_like_pyagent_policy_check(
    tmp_path: Path, plane: ControlPlane
) -> None:
    """examples/sovereign with one pool moved to a jurisdiction the owner does not allow (PA502)."""
    spec = _sovereign_in_us(tmp_path)
    code, found = _checked(spec, TODAY)
    assert code == 1 and {c for c, severity in found.items() if severity == "error"} == {"PA502"}, found
    _, stack, up = _up_with_pack(tmp_path, plane, spec, TODAY)
    assert up.returncode != 0, up.output
    assert mandatory_violations(up.output) == {"PA502"}, up.output
    assert "sovereign-dublin" in up.output
    # the preview that `up` runs first stopped it: nothing was created
    namespace = next(o["object"] for o in planned(stack) if o["object"]["kind"] == "Namespace")
    assert plane.get(object_path(plane, namespace))[0] == 404


@pytest.mark.parametrize(("today", "waived"), [(TODAY, True), ("2027-02-01", False)], ids=["active", "expired"])
def test_a_waiver_behaves_the_same_in_the_policy_pack_and_in_pyagent_policy_check(
    today: str, waived: bool, tmp_path: Path, plane: ControlPlane
) -> None:
    """The violating spec above with a waiver of PA502 for the dublin pool's StatefulSet. While the
    waiver is active, `pyagent policy check` passes (the finding shown as a note) and so does `pulumi
    up` with the pack; once it has expired, both fail with PA502 (the check adds PA590, the expired
    waiver, a rule of the spec that the pack does not see)."""
    spec = _sovereign_in_us(tmp_path, WAIVER)
    code, found = _checked(spec, today)
    engine, stack, up = _up_with_pack(tmp_path, plane, spec, today)
    if waived:
        assert code == 0 and found.get("PA502") == "note", found
        assert up.returncode == 0 and "pyagent@v0.1.0" in up.output and not mandatory_violations(up.output), up.output
        engine.pulumi(stack, "destroy", "--yes")
    else:
        assert code == 1 and {c for c, severity in found.items() if severity == "error"} == {"PA502", "PA590"}, found
        assert up.returncode != 0 and mandatory_violations(up.output) == {"PA502"}, up.output
