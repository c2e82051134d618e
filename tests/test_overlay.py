"""Environment overlays: order, merge rules, and provenance of every effective value."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pyagent_compile.load import load_document
from pyagent_compile.load.overlay import effective_document
from pyagent_compile.pipeline import compile_spec
from tests.conftest import CLI, ROOT

RESEARCH = ROOT / "examples" / "research"


def effective(env: str) -> tuple[dict[str, object], object]:
    base, _ = load_document(RESEARCH / "swarm.yaml", "examples/research/swarm.yaml")
    assert base is not None
    doc, diags = effective_document(base, env, RESEARCH, "examples/research", load_document)
    assert not diags
    return doc.data, doc


def test_overrides_replace_scalars_and_keep_the_rest() -> None:
    data, _ = effective("dev")
    assert data["nodes"]["h100"]["replicas"] == 1  # type: ignore[index]
    assert data["nodes"]["h100"]["hardware"]["gpu"]["count"] == 4  # type: ignore[index]


def test_each_value_points_at_the_file_and_line_that_set_it() -> None:
    _, doc = effective("prod")
    text = (RESEARCH / "swarm.yaml").read_text().splitlines()
    ref = doc.value_span(("image", "ref"))  # type: ignore[attr-defined]
    assert "sha256" in text[ref.line - 1]
    replicas = doc.value_span(("nodes", "h100", "replicas"))  # type: ignore[attr-defined]
    assert text[replicas.line - 1].strip() == "replicas: 2"


@pytest.fixture
def spec_with_overlay_file(tmp_path: Path) -> Path:
    shutil.copytree(RESEARCH, tmp_path / "research")
    spec = tmp_path / "research" / "swarm.yaml"
    overlay = tmp_path / "research" / "overlays" / "staging.yaml"
    overlay.parent.mkdir()
    overlay.write_text("nodes:\n  control:\n    replicas: 4\n  cpu-workers:\n    replicas: 3\n")
    spec.write_text(
        spec.read_text().replace(
            "environments:\n",
            "environments:\n  staging:\n    file: overlays/staging.yaml\n    overrides:\n"
            "      nodes:\n        cpu-workers:\n          replicas: 5\n",
        )
    )
    return spec


def test_file_then_inline_overrides_and_errors_point_into_the_overlay_file(
    spec_with_overlay_file: Path, pyagent: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(spec_with_overlay_file.parent.parent)
    result = compile_spec(spec_with_overlay_file, "research/swarm.yaml", "staging")
    env = result.environments[0]
    assert env.doc.data["nodes"]["cpu-workers"]["replicas"] == 5  # inline overrides win over the file
    # 4 control voters + 2 h100 voters = 6: even, so PA305, located in the overlay file.
    quorum = [d for d in result.diagnostics if d.code == "PA305"]
    assert quorum and any(
        label.span.file == "research/overlays/staging.yaml"
        for label in [quorum[0].primary, *quorum[0].secondary]
        if label is not None
    )
    run = pyagent("validate", "research/swarm.yaml", "--env", "staging", "--format", "json")
    located = {d["location"]["file"] for d in json.loads(run.out)["diagnostics"]}
    assert run.code == 1 and located


def test_missing_overlay_file_is_located(tmp_path: Path, pyagent: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(RESEARCH, tmp_path / "research")
    spec = tmp_path / "research" / "swarm.yaml"
    spec.write_text(spec.read_text().replace("  prod:\n", "  prod:\n    file: overlays/prod.yaml\n"))
    monkeypatch.chdir(tmp_path)
    run = pyagent("validate", "research/swarm.yaml", "--env", "prod", "--format", "json")
    codes = [d["code"] for d in json.loads(run.out)["diagnostics"]]
    assert codes == ["PA208"]


def test_extends_cycle_is_reported(tmp_path: Path, pyagent: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(RESEARCH, tmp_path / "research")
    spec = tmp_path / "research" / "swarm.yaml"
    text = spec.read_text().replace("  dev:\n    overrides:", "  dev:\n    extends: prod\n    overrides:")
    spec.write_text(text.replace("  prod:\n    overrides:", "  prod:\n    extends: dev\n    overrides:"))
    monkeypatch.chdir(tmp_path)
    run = pyagent("validate", "research/swarm.yaml", "--format", "json")
    diagnostics = json.loads(run.out)["diagnostics"]
    assert "PA309" not in [d["code"] for d in diagnostics], "PA309 is a logic manifest cycle"
    (cycle,) = [d for d in diagnostics if d["code"] == "PA313"]
    assert "dev -> prod -> dev" in cycle["message"] and cycle["path"] == "environments.prod.extends"
