"""Every rendered Kubernetes object passes kubernetes-validate's strict schemas (unknown fields
are errors) for two Kubernetes versions."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

VERSIONS = ("1.30.0", "1.34.0")
# Custom resources have no schema in kubernetes-validate (their CRDs come from an operator);
# tests/test_observability.py checks the PodMonitor's fields instead.
CUSTOM_KINDS = ("PodMonitor",)
MANIFESTS = sorted(
    p
    for p in (ROOT / "stacks").glob("*/*/manifests/*.yaml")
    if yaml.safe_load(p.read_text())["kind"] not in CUSTOM_KINDS
)


def test_there_are_manifests_to_validate() -> None:
    assert len(MANIFESTS) > 30
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in MANIFESTS}
    assert kinds >= {"Namespace", "StatefulSet", "Service", "NetworkPolicy", "PodDisruptionBudget", "ConfigMap"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("manifest", MANIFESTS, ids=[str(p.relative_to(ROOT / "stacks")) for p in MANIFESTS])
def test_manifest_is_valid_in_strict_mode(manifest: Path, version: str) -> None:
    body = yaml.safe_load(manifest.read_text())
    kubernetes_validate.validate(body, version, strict=True)


def test_strict_mode_does_reject_an_unknown_field() -> None:
    body = yaml.safe_load(next(p for p in MANIFESTS if "statefulset" in p.name).read_text())
    body["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(body, VERSIONS[0], strict=True)
