"""Every rule has a passing fixture (the examples, which must pass) and a failing one (an
example's object or spec with the one mistake the rule exists for)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyagent_compile.diagnostics import Severity
from pyagent_compile.pipeline import compile_spec
from pyagent_compile.policy import ObjectContext, check_plan, evaluate_object, evaluate_stack, load_catalog
from pyagent_compile.policy.rules import OBJECT_RULES, STACK_RULES, personal_data_jurisdiction
from pyagent_compile.policy.spec_rules import SPEC_RULES
from tests.policy.helpers import EXAMPLES, copy_example, example_environments

TODAY = dt.date(2026, 11, 24)
PROD = ObjectContext(tier="prod")


def sovereign_objects() -> list[dict[str, Any]]:
    env = next(e for e in example_environments("sovereign") if e.name == "prod")
    assert env.plan is not None
    return [copy.deepcopy(o.body) for o in env.plan.objects]


def first(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def container(obj: dict[str, Any]) -> dict[str, Any]:
    first_container: dict[str, Any] = pod(obj)["containers"][0]
    return first_container


def netpol(ingress: list[Any] | None = None, egress: list[Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"pyagent.dev/swarm": "sovereign"}}, "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "x", "namespace": "sovereign-prod"},
        "spec": spec,
    }


def _secret(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "soul"}, "data": {"soul": "c2VjcmV0"}}


def _private_key(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = first(objs, "ConfigMap")
    cm["data"]["key.pem"] = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n"
    return cm


def _literal_token(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = first(objs, "StatefulSet")
    container(sts)["env"].append({"name": "API_TOKEN", "value": "hunter2"})
    return sts


def _peer_share(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and "node.json" in o["data"])
    config = json.loads(cm["data"]["node.json"])
    config["sovereignty"]["peerShare"] = "memory"
    cm["data"]["node.json"] = json.dumps(config)
    return cm


def _no_storage_class(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = first(objs, "StatefulSet")
    del sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"]
    return sts


def _tag(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = first(objs, "StatefulSet")
    container(sts)["image"] = "registry.example.eu/pyagent/pyagent-node:1.0"
    return sts


def _no_ports(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return netpol(ingress=[{"from": [{"podSelector": {"matchLabels": {"pyagent.dev/swarm": "sovereign"}}}]}])


def _internet_ingress(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return netpol(ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8443}]}])


def _raft_to_cidr(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return netpol(ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"port": 7100}]}])


def _open_egress(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return netpol(egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}])


def _no_limits(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = first(objs, "StatefulSet")
    del container(sts)["resources"]["limits"]
    return sts


def _privileged(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = first(objs, "StatefulSet")
    container(sts)["securityContext"]["privileged"] = True
    return sts


def _writable_root(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = first(objs, "StatefulSet")
    container(sts)["securityContext"]["readOnlyRootFilesystem"] = False
    return sts


def _root(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = first(objs, "StatefulSet")
    del container(sts)["securityContext"]["runAsNonRoot"]
    del pod(sts)["securityContext"]["runAsNonRoot"]
    return sts


def _token(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sa = first(objs, "ServiceAccount")
    sa["automountServiceAccountToken"] = True
    return sa


def _pod_token(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = first(objs, "StatefulSet")
    del pod(sts)["automountServiceAccountToken"]
    return sts


FAILING: list[tuple[str, str, Callable[[list[dict[str, Any]]], dict[str, Any]]]] = [
    ("PA501", "secret-with-data", _secret),
    ("PA501", "private-key", _private_key),
    ("PA501", "literal-token", _literal_token),
    ("PA504", "peer-share", _peer_share),
    ("PA505", "default-storage-class", _no_storage_class),
    ("PA506", "image-tag", _tag),
    ("PA511", "no-ports", _no_ports),
    ("PA511", "internet-ingress", _internet_ingress),
    ("PA512", "raft-to-cidr", _raft_to_cidr),
    ("PA513", "open-egress", _open_egress),
    ("PA520", "no-limits", _no_limits),
    ("PA521", "privileged", _privileged),
    ("PA522", "writable-root", _writable_root),
    ("PA523", "root", _root),
    ("PA524", "service-account-token", _token),
    ("PA524", "pod-token", _pod_token),
]


@pytest.mark.parametrize(("rule", "case", "mutate"), FAILING, ids=[f"{r}-{c}" for r, c, _ in FAILING])
def test_object_rule_fails_on_its_mistake(rule: str, case: str, mutate: Callable[..., dict[str, Any]]) -> None:
    obj = mutate(sovereign_objects())
    assert rule in {v.rule for v in OBJECT_RULES[rule](obj, PROD)}
    assert rule in {v.rule for v in evaluate_object(obj, PROD)}


def test_jurisdiction_label_is_checked_against_the_allowed_set() -> None:
    eu_only = ObjectContext(tier="prod", jurisdictions=frozenset({"EU"}))
    sts = first(sovereign_objects(), "StatefulSet")
    assert personal_data_jurisdiction(sts, eu_only) == []
    labels = sts["spec"]["template"]["metadata"]["labels"]
    labels["pyagent.dev/jurisdiction"] = "US"
    found = personal_data_jurisdiction(sts, eu_only)
    assert [(v.rule, v.subpath) for v in found] == [("PA502", ("placement", "jurisdiction"))]
    assert "PA502" in {v.rule for v in evaluate_object(sts, eu_only)}
    del labels["pyagent.dev/jurisdiction"]
    assert [v.subpath for v in personal_data_jurisdiction(sts, eu_only)] == [("placement",)]
    assert personal_data_jurisdiction(sts, PROD) == []  # no allowed set: nothing to enforce


def test_every_object_and_stack_rule_has_a_failing_fixture() -> None:
    covered = {rule for rule, _, _ in FAILING} | {"PA510", "PA502"}  # PA502: the test above
    assert covered == set(OBJECT_RULES) | set(STACK_RULES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_pass_every_rule(example: str) -> None:
    for env in example_environments(example):
        assert env.plan is not None and env.swarm is not None
        diags = check_plan(env.plan, env.swarm, env.doc, TODAY)
        assert [d for d in diags if d.severity is Severity.ERROR] == [], (example, env.name)


def test_default_deny_missing_fails() -> None:
    objs = [o for o in sovereign_objects() if not o["metadata"]["name"].endswith("default-deny")]
    found = evaluate_stack(objs, PROD)
    assert [(body["kind"], v.rule) for body, v in found] == [("Namespace", "PA510")]
    assert evaluate_stack(sovereign_objects(), PROD) == []


def test_dev_skips_tier_bound_rules() -> None:
    sts = _tag(sovereign_objects())
    assert "PA506" not in {v.rule for v in evaluate_object(sts, ObjectContext(tier="dev"))}


def test_catalog_matches_code_table_and_registry() -> None:
    from pyagent_compile.diagnostics.codes import CODES

    catalog = load_catalog()
    assert all(rule_id in CODES for rule_id in catalog)
    assert {r for r, info in catalog.items() if info.scope == "object"} == set(OBJECT_RULES)
    assert {r for r, info in catalog.items() if info.scope == "stack"} == set(STACK_RULES)
    assert set(SPEC_RULES) <= {r for r, info in catalog.items() if info.scope == "spec"}
    assert all(info.rationale and info.hint for info in catalog.values())


# -- spec-level rules ---------------------------------------------------------------------------
def _check(spec: Path, env: str = "prod") -> list[Any]:
    result = compile_spec(spec, spec.name, env)
    assert result.ok, result.diagnostics
    e = result.environments[0]
    assert e.plan is not None and e.swarm is not None
    return check_plan(e.plan, e.swarm, e.doc, TODAY)


def test_pool_outside_allowed_jurisdiction_is_located_on_its_line(tmp_path: Path) -> None:
    spec = copy_example(
        "sovereign",
        tmp_path,
        edit=(
            (
                "      jurisdiction: EU\n    cores: [assistant]\n  dublin",
                "      jurisdiction: US\n    cores: [assistant]\n  dublin",
            ),
        ),
    )
    diags = [d for d in _check(spec) if d.code == "PA502"]
    assert len(diags) == 1 and diags[0].severity is Severity.ERROR
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "jurisdiction: US" in text)
    assert diags[0].span is not None and (diags[0].span.line, diags[0].span.col) == (line, 21)
    assert diags[0].path == "nodes.frankfurt.placement.jurisdiction"


def test_pool_without_jurisdiction_fails(tmp_path: Path) -> None:
    spec = copy_example(
        "sovereign",
        tmp_path,
        edit=(
            (
                "      zones: [eu-west-1a, eu-west-1b]\n      jurisdiction: EU\n",
                "      zones: [eu-west-1a, eu-west-1b]\n",
            ),
        ),
    )
    assert [d.path for d in _check(spec) if d.code == "PA502"] == ["nodes.dublin.placement"]


def test_owner_without_personal_data_is_advisory(tmp_path: Path) -> None:
    spec = copy_example("sovereign", tmp_path, edit=(("  personalData:\n    jurisdictions: [EU]\n", ""),))
    diags = [d for d in _check(spec) if d.code == "PA503"]
    assert len(diags) == 1 and diags[0].severity is Severity.WARNING
    assert not [d for d in _check(copy_example("sovereign", tmp_path / "b")) if d.code == "PA503"]


def test_docs_list_every_rule() -> None:
    from tests.policy.helpers import ROOT

    docs = (ROOT / "docs" / "policies.md").read_text()
    for rule in load_catalog().values():
        assert f"| {rule.id} | {rule.name} | {rule.severity} |" in docs, rule.id
