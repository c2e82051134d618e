"""Parity: every example ships as YAML and as CUE, and both compile to byte-identical stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cue.cue_helpers import REPO, needs_cue, run_pyagent

EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/swarm.yaml"))


def test_every_example_has_a_cue_twin() -> None:
    assert EXAMPLES
    missing = [p.name for p in EXAMPLES if not (p / "swarm.cue").is_file()]
    assert not missing, f"examples without swarm.cue: {missing}"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_cue
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_yaml_and_cue_compile_to_identical_stacks(example: Path, tmp_path: Path) -> None:
    outputs = {}
    for spec in ("swarm.yaml", "swarm.cue"):
        out = tmp_path / spec
        done = run_pyagent("compile", (example / spec).relative_to(REPO).as_posix(), "--out", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        outputs[spec] = tree(out)
    assert outputs["swarm.yaml"], "nothing was written"
    assert outputs["swarm.yaml"].keys() == outputs["swarm.cue"].keys()
    for name, content in outputs["swarm.yaml"].items():
        assert outputs["swarm.cue"][name] == content, f"{name} differs between the YAML and the CUE spec"
