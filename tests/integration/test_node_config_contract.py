"""node.json is one contract: every configuration the compiler renders (each Kubernetes pool's
ConfigMap, each local node) validates against specs/node-config.schema.json and is accepted by
the daemon's own parser (`pyagent-node check-config`), which derives the identity it will run
with from it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from pyagent_compile.contracts.node_config import NodeConfig, json_schema
from tests.conftest import ROOT

STACKS = ROOT / "stacks"


def _kubernetes_configs() -> list[tuple[str, dict[str, object]]]:
    found = []
    for path in sorted(STACKS.glob("*/*/manifests/*-configmap-*-config.yaml")):
        body = yaml.safe_load(path.read_text())
        if "node.json" in body.get("data", {}):
            found.append((str(path.relative_to(ROOT)), json.loads(body["data"]["node.json"])))
    return found


def _local_configs() -> list[Path]:
    return sorted(STACKS.glob("*/local/nodes/*.json"))


KUBERNETES = _kubernetes_configs()
LOCAL = _local_configs()


def test_every_stack_has_configs() -> None:
    assert len(KUBERNETES) >= 10 and len(LOCAL) >= 10


def test_the_committed_schema_is_the_contract() -> None:
    assert (ROOT / "specs/node-config.schema.json").read_text() == json_schema(), "run `make golden`"


@pytest.mark.parametrize("config", [c for _, c in KUBERNETES] + [json.loads(p.read_text()) for p in LOCAL])
def test_rendered_configs_validate_against_the_schema(config: dict[str, object]) -> None:
    jsonschema.validate(config, json.loads(json_schema()))
    NodeConfig.model_validate_json(json.dumps(config))


def _check(daemon: Path, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(daemon), "check-config", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(("source", "config"), KUBERNETES, ids=[s for s, _ in KUBERNETES])
def test_the_daemon_reads_every_kubernetes_config(
    daemon: Path, tmp_path: Path, source: str, config: dict[str, object]
) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(config))
    membership = config["membership"]
    assert isinstance(membership, dict)
    pool = next(p for p in membership["pools"] if p["name"] == config["pool"])
    for ordinal in range(3):
        pod = f"{pool['statefulSet']}-{ordinal}"
        done = _check(daemon, path, "--pod-name", pod)
        assert done.returncode == 0, f"{source} as {pod}: {done.stderr}"
        seen = json.loads(done.stdout)
        assert seen["nodeId"] == pool["index"] * 1000 + ordinal + 1 and seen["name"] == pod
        host = f"{pod}.{membership['service']}.{membership['namespace']}.svc.cluster.local"
        assert seen["members"][0]["raft"] == f"{host}:{config['ports']['raft']}"  # type: ignore[index]
        assert seen["bootstrapper"] == (seen["seed"]["nodeId"] == seen["nodeId"])
    stranger = _check(daemon, path, "--pod-name", f"{pool['statefulSet']}x-0")
    assert stranger.returncode == 2 and "is not a pod of StatefulSet" in stranger.stderr


@pytest.mark.parametrize("config", LOCAL, ids=[str(p.relative_to(STACKS)) for p in LOCAL])
def test_the_daemon_reads_every_local_config(daemon: Path, tmp_path: Path, config: Path) -> None:
    members = json.loads(config.read_text())["membership"]["members"]
    keys = tmp_path / "members.json"
    key = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
    keys.write_text(json.dumps({"members": [{**m, "publicKey": key} for m in members]}))
    done = _check(daemon, config, "--members", str(keys))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["name"] == config.stem and seen["listen"]["raft"].startswith("127.0.0.1:")
    unkeyed = _check(daemon, config)
    assert unkeyed.returncode == 2 and "publicKey" in unkeyed.stderr and "Traceback" not in unkeyed.stderr
