"""A core's model: a name, or an OpenAI-compatible server (`{name, endpoint, apiKey, temperature,
seed, maxTokens}`). What reaches the node: work.json's `models.<core>` and, on Kubernetes, the
API key as a secretKeyRef environment variable; a cort step without a server is PA314."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyagent_compile.canonical import to_json as canonical_json
from pyagent_compile.contracts.work import read_work_file
from pyagent_compile.pipeline import SpecResult, compile_spec
from pyagent_compile.plan.work import api_key_env, work_file
from tests.conftest import ROOT

SPEC = """\
apiVersion: pyagent.dev/v1alpha1
kind: Swarm
metadata:
  name: models
nodes:
  agents:
    replicas: 3
    roles: [voter, worker]
    hardware: {{cpu: 2, memory: 4Gi}}
    cores: [coder, my-helper]
cores:
  coder:
    model: {coder}
  my-helper:
    model: {helper}
manifests:
  think:
    core: coder
    steps:
      - id: reason
        kind: cort
        prompt: Why does the test fail?
        rounds: 2
        alternatives: 2
memory:
  kv:
    capacity: {{blocks: 64}}
environments:
  dev: {{}}
"""

SERVER = "{name: qwen3-coder-30b, endpoint: 'http://vllm.models.svc:8000/v1', temperature: 0, seed: 7, maxTokens: 256}"
KEYED = "{name: small, endpoint: 'http://127.0.0.1:8080/v1', apiKey: {secret: model-keys, key: helper}}"


def compile_text(tmp_path: Path, coder: str = SERVER, helper: str = KEYED) -> SpecResult:
    spec = tmp_path / "swarm.yaml"
    spec.write_text(SPEC.format(coder=coder, helper=helper), encoding="utf-8")
    return compile_spec(spec, "swarm.yaml")


def diagnostics(result: SpecResult) -> list[tuple[str, int, int]]:
    return [(d.code, d.primary.span.line, d.primary.span.col) for d in result.diagnostics if d.primary]


def statefulset(result: SpecResult) -> dict[str, Any]:
    (env,) = result.environments
    assert env.plan is not None
    (body,) = [o.body for o in env.plan.objects if o.body["kind"] == "StatefulSet"]
    return body


def test_the_object_form_reaches_work_json(tmp_path: Path) -> None:
    result = compile_text(tmp_path)
    assert result.ok, result.diagnostics
    (env,) = result.environments
    assert env.swarm is not None
    work = work_file(env.swarm).to_json()
    assert work["models"]["coder"] == {
        "name": "qwen3-coder-30b",
        "endpoint": "http://vllm.models.svc:8000/v1",
        "apiKey": None,
        "temperature": 0.0,
        "seed": 7,
        "maxTokens": 256,
    }
    assert work["models"]["my-helper"]["apiKey"] == {
        "env": "PYAGENT_MODEL_KEY_MY_HELPER",
        "file": "/etc/pyagent/model-keys/my-helper",
        "secret": {"name": "model-keys", "key": "helper"},
    }
    # The step's own settings, the prompt among them, are the cort step's params.
    (step,) = work["manifests"]["think"]["steps"]
    assert step["params"] == {"prompt": "Why does the test fail?", "rounds": 2, "alternatives": 2}
    # The daemon's side of the contract reads it back.
    assert read_work_file(json.dumps(work)).models["my-helper"].api_key is not None


def test_a_bare_name_is_a_model_without_a_server(tmp_path: Path) -> None:
    result = compile_text(tmp_path, coder=SERVER, helper="llama-3.3-70b")
    assert result.ok, result.diagnostics
    (env,) = result.environments
    assert env.swarm is not None
    model = work_file(env.swarm).to_json()["models"]["my-helper"]
    assert model == {
        "name": "llama-3.3-70b",
        "endpoint": None,
        "apiKey": None,
        "temperature": None,
        "seed": None,
        "maxTokens": None,
    }


def test_the_api_key_reaches_the_pod_as_a_file_by_secret_reference_only(tmp_path: Path) -> None:
    result = compile_text(tmp_path)
    pod = statefulset(result)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # Not an environment variable (checkov CKV_K8S_35): the Secret's key as the file work.json names.
    assert not [e for e in container.get("env", []) if e["name"].startswith("PYAGENT_MODEL_KEY_")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "model-keys"]
    assert volume["projected"]["sources"] == [
        {"secret": {"name": "model-keys", "items": [{"key": "helper", "path": "my-helper"}]}}
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "model-keys"]
    assert mount == {"name": "model-keys", "mountPath": "/etc/pyagent/model-keys", "readOnly": True}


def test_key_variable_names_stay_apart() -> None:
    assert api_key_env("coder") == "PYAGENT_MODEL_KEY_CODER"
    assert api_key_env("my-helper") == "PYAGENT_MODEL_KEY_MY_HELPER"
    assert api_key_env("a-b") != api_key_env("ab")


def test_a_cort_step_needs_a_server(tmp_path: Path) -> None:
    result = compile_text(tmp_path, coder="qwen3-coder-30b")
    assert diagnostics(result) == [("PA314", 21, 15)]
    (problem,) = result.diagnostics
    assert problem.path == "manifests.think.steps[0].kind"
    assert [(s.span.line, s.span.col) for s in problem.secondary] == [(13, 12)]
    assert "qwen3-coder-30b" in problem.help and "endpoint" in problem.help


def test_a_cort_step_of_a_core_without_a_model(tmp_path: Path) -> None:
    result = compile_text(tmp_path, coder="null")
    assert [d.code for d in result.diagnostics] == ["PA314"]
    assert "declares no model" in result.diagnostics[0].message


@pytest.mark.parametrize(
    ("coder", "code", "col"),
    [
        # https is not spoken by the node's client: refused here rather than at run time.
        ("{name: m, endpoint: 'https://api.example.com/v1'}", "PA206", 32),
        ("{name: m, endpoint: 'http://user:pw@host/v1'}", "PA206", 32),
        ("{name: m, endpoint: 'http://host/v1?key=abc'}", "PA206", 32),
        ("{name: m, endpoint: 'vllm:8000'}", "PA206", 32),
        # A literal key is not a secret reference.
        ("{name: m, endpoint: 'http://h/v1', apiKey: sk-live-123}", "PA203", 55),
        ("{name: m, endpoint: 'http://h/v1', temperature: 3}", "PA205", 60),
        ("{name: m, endpoint: 'http://h/v1', sampling: 1}", "PA201", 47),
        ("{endpoint: 'http://h/v1'}", "PA202", 5),
        ("42", "PA203", 12),
    ],
)
def test_bad_models_are_located_once(tmp_path: Path, coder: str, code: str, col: int) -> None:
    result = compile_text(tmp_path, coder=coder)
    # One mistake, one diagnostic: a mapping is not also reported as "expected a string".
    assert diagnostics(result) == [(code, 13, col)], [(d.code, d.message) for d in result.diagnostics]


WORK_FIXTURE = ROOT / "native" / "crates" / "pyagent-model" / "tests" / "data" / "research-work.json"


def test_the_crates_fixture_is_what_the_compiler_writes() -> None:
    """pyagent-model's tests/work_json.rs reads this file with the daemon side's structs; it must
    be the compiler's real output for the research example (copy it from there when it changes)."""
    result = compile_spec(ROOT / "examples" / "research" / "swarm.yaml", "examples/research/swarm.yaml")
    env = result.environments[0]
    assert env.swarm is not None
    assert WORK_FIXTURE.read_text(encoding="utf-8") == canonical_json(work_file(env.swarm).to_json()), (
        f"{WORK_FIXTURE.relative_to(ROOT)} is stale: write work_file(swarm).to_json() of examples/research there"
    )
