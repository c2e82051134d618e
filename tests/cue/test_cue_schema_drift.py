"""The CUE schema and the pydantic models cannot drift apart.

1. The committed schema (specs/cue/swarm.cue and its vendored copies) is exactly what the
   generator makes from the models today: a field, type, bound, pattern or default added,
   removed or changed in spec.py without regenerating fails here.
2. Defaults, end to end: a minimal spec exported by the real `cue` fills in the same values
   that pydantic's defaults give.
3. The schema accepts every YAML example (`cue vet` against #Swarm).

Regenerate with `python -m pyagent_compile.model.cue_schema --write` and review the diff.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pyagent_compile.load.cue import find_cue
from pyagent_compile.model.cue_schema import MODEL_DEFAULTS, SCHEMA_PATHS, generate
from pyagent_compile.model.spec import Swarm
from tests.cue.cue_helpers import REPO, needs_cue

MINIMAL = {
    "apiVersion": "pyagent.dev/v1alpha1",
    "kind": "Swarm",
    "metadata": {"name": "tiny", "owner": {"publicKey": "ed25519:3XqTtZc1hYk9sVv1o8mWb0rW8kq1mJ4m0yQ0e3B1kXc="}},
    "image": {"ref": "ghcr.io/acme/node:1"},
    "nodes": {"p": {"replicas": 1, "hardware": {"cpu": 1, "memory": "1Gi", "gpu": {"model": "L4-24GB"}}}},
    "cores": {"c": {"tools": [{"name": "t", "command": ["x"]}]}},
    "manifests": {
        "m": {
            "core": "c",
            "steps": [
                {"id": "a", "kind": "cort"},
                {"id": "b", "kind": "sandbox", "command": ["x"]},
                {"id": "d", "kind": "delegate", "core": "c"},
            ],
        }
    },
    "memory": {"kv": {"capacity": {"blocks": 8}}},
    "firewall": {"rules": [{"name": "r", "from": {"swarm": True}, "to": {"pool": "p"}, "ports": [{"port": 1}]}]},
    "sovereignty": {"soul": {"secretRef": {"name": "s", "key": "k"}}, "personalData": {"jurisdictions": ["EU"]}},
    "environments": {"dev": {}},
}


@pytest.mark.parametrize("path", SCHEMA_PATHS, ids=[p.relative_to(REPO).as_posix() for p in SCHEMA_PATHS])
def test_committed_schema_matches_the_models(path: Path) -> None:
    assert path.is_file(), f"{path} is missing: run python -m pyagent_compile.model.cue_schema --write"
    assert path.read_text(encoding="utf-8") == generate(), (
        f"{path.relative_to(REPO)} is stale: run `python -m pyagent_compile.model.cue_schema --write`"
    )


def test_model_defaults_table_matches_the_models() -> None:
    """The two defaults CUE leaves to the model are what the model really applies."""
    swarm = Swarm.model_validate({k: v for k, v in MINIMAL.items() if k not in ("image", "memory")})
    dumped = swarm.model_dump(by_alias=True, exclude_none=True)
    assert dumped["image"] == {**MODEL_DEFAULTS[("Swarm", "image")], "repository": "ghcr.io/pyagent/pyagent-node"}
    assert dumped["memory"]["kv"]["capacity"] == MODEL_DEFAULTS[("Kv", "capacity")]


@needs_cue
def test_cue_fills_the_same_defaults_as_pydantic(tmp_path: Path) -> None:
    (tmp_path / "schema.cue").write_text(generate().replace("package swarm", "package probe"))
    (tmp_path / "spec.cue").write_text(f"package probe\n\nspec: #Swarm & {json.dumps(MINIMAL)}\n")
    cue = find_cue()
    assert cue is not None
    done = subprocess.run(
        [cue, "export", "--out", "json", "-e", "spec", "."], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)
    from_cue = Swarm.model_validate(exported).model_dump(by_alias=True, exclude_none=True)
    from_models = Swarm.model_validate(MINIMAL).model_dump(by_alias=True, exclude_none=True)
    assert from_cue == from_models
    # CUE wrote out every default itself (the spec sets the two that MODEL_DEFAULTS leaves to pydantic).
    assert exported == from_models


@needs_cue
@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*/swarm.yaml")), ids=lambda p: p.parent.name)
def test_schema_accepts_the_yaml_examples(example: Path, tmp_path: Path) -> None:
    shutil.copy(REPO / "specs" / "cue" / "swarm.cue", tmp_path / "swarm.cue")
    cue = find_cue()
    assert cue is not None
    done = subprocess.run(
        [cue, "vet", "-d", "#Swarm", str(tmp_path / "swarm.cue"), str(example)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
