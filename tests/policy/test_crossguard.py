"""The CrossGuard pack gives the same verdicts as `pyagent policy check` on the same stacks:
the committed example stacks (clean) and stacks compiled from specs with mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyagent_compile.pipeline import compile_spec
from pyagent_compile.policy.engine import collect_findings
from tests.policy.crossguard import run_pack
from tests.policy.helpers import ROOT, copy_example, run_cli
from tests.policy.mocks import capture_stack

TODAY = "2026-11-24"
STACKS = sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "stacks").glob("*/*/plan.json"))
DUBLIN_DISK = "      memory: 128Gi\n      storage: 200Gi\n"
DUBLIN_GPU = "      gpu:\n        model: L40S-48GB\n        count: 2\n    placement:\n      region: eu-west-1"
WAIVER = """
waivers:
  - ruleId: PA505
    object: nodes.gateway
    reason: the gateway keeps no memory on its volume (stateless TLS terminator); reviewed
    expires: "2027-01-31"
"""


def pyagent_verdicts(spec: Path, env: str) -> set[tuple[str, str]]:
    """(rule id, logical name) of every non-waived object/stack finding of `pyagent policy check`."""
    result = compile_spec(spec, spec.name, env)
    e = result.environments[0]
    assert e.plan is not None and e.swarm is not None
    config = json.loads(run_cli("policy", "pack-config", str(spec), "--env", env, "--today", TODAY)[1])
    return {
        (f.rule.id, f.logical_name)
        for f in collect_findings(e.plan, e.swarm)
        if f.rule.scope != "spec" and f.logical_name not in config[f"{f.rule.id.lower()}-{f.rule.name}"]["waived"]
    }


def spec_of(stack: str) -> tuple[Path, str]:
    swarm, env = Path(stack).parts[1:3]
    return ROOT / "examples" / swarm / "swarm.yaml", env


@pytest.mark.parametrize("stack", STACKS)
def test_example_stacks_pass_the_pack(stack: str) -> None:
    spec, env = spec_of(stack)
    resources = capture_stack(ROOT / stack)
    plan = json.loads((ROOT / stack / "plan.json").read_text())
    assert sorted(r["name"] for r in resources) == sorted(o["logicalName"] for o in plan["objects"])
    # Mock inputs are camelCase with floats: the pack must see through that.
    sts = next(r for r in resources if r["type"] == "kubernetes:apps/v1:StatefulSet")
    assert isinstance(sts["inputs"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"], float)
    config = json.loads(run_cli("policy", "pack-config", str(spec), "--env", env, "--today", TODAY)[1])
    assert run_pack(resources, config) == pyagent_verdicts(spec, env) == set()


def test_pack_and_check_agree_on_a_stack_with_mistakes(tmp_path: Path) -> None:
    spec = copy_example(
        "sovereign",
        tmp_path,
        edit=(
            ("from: {cidrs: [203.0.113.0/24]}", "from: {cidrs: [0.0.0.0/0]}"),
            (DUBLIN_DISK + "      storageClass: encrypted-ssd\n" + DUBLIN_GPU, DUBLIN_DISK + DUBLIN_GPU),
            ("      memory: 4Gi\n      storageClass: encrypted-ssd\n", "      memory: 4Gi\n"),
        ),
        append=WAIVER,
    )
    out = tmp_path / "out"
    assert run_cli("compile", str(spec), "--out", str(out), "--env", "prod")[0] == 0
    config = json.loads(run_cli("policy", "pack-config", str(spec), "--env", "prod", "--today", TODAY)[1])
    found = run_pack(capture_stack(out / "sovereign" / "prod"), config)
    expected = {("PA511", "networkpolicy/sovereign-fw-partner-tls-in"), ("PA505", "statefulset/sovereign-dublin")}
    assert found == pyagent_verdicts(spec, "prod") == expected


@pytest.mark.parametrize(
    ("stack", "rule", "policy"),
    [
        ("laptop/dev", "PA505", "pa505-memory-volume-encrypted"),  # no storage class
        ("research/dev", "PA506", "pa506-image-pinned-by-digest"),  # follows the tag 0.1.0
    ],
)
def test_pack_enforces_tier_from_config(stack: str, rule: str, policy: str) -> None:
    resources = capture_stack(ROOT / "stacks" / stack)
    found = run_pack(resources, {})
    assert found and {r for r, _ in found} == {rule}, found
    assert run_pack(resources, {policy: {"tier": "dev"}}) == set()


def test_pack_project_file() -> None:
    import ast

    import yaml

    from tests.policy.crossguard import PACK_DIR, load_pack

    project = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert (PACK_DIR / project["runtime"]["options"]["virtualenv"]).resolve() == ROOT / ".venv"
    main = ast.parse((PACK_DIR / "__main__.py").read_text())
    assert any(isinstance(n, ast.ImportFrom) and n.module == "pack" for n in main.body)
    names = [p.name for p in load_pack().POLICIES]
    assert len(names) == len(set(names)) == 14 and all(n.startswith("pa5") for n in names)
