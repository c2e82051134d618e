"""The committed stacks are the golden files: compiling the examples must reproduce them byte
for byte, twice, from any working folder. Regenerate with `make golden` and review the diff."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI, EXAMPLES, ROOT, stack_files


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in stack_files(folder)}


def compile_examples(out: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
    specs = [str(ROOT / "examples" / name / "swarm.yaml") for name in EXAMPLES]
    subprocess.run(
        [sys.executable, "-m", "pyagent_compile", "compile", *specs, "--out", str(out)],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )


def committed(swarm: str) -> dict[str, bytes]:
    files = tree(ROOT / "stacks" / swarm)
    # The local target's runtime data is not part of the compiled output.
    return {p: c for p, c in files.items() if "/data/" not in p and not p.startswith("local/data")}


def test_compiled_examples_match_the_committed_stacks(tmp_path: Path) -> None:
    compile_examples(tmp_path, ROOT)
    for swarm in EXAMPLES:
        assert tree(tmp_path / swarm) == committed(swarm), f"stacks/{swarm} is stale: run `make golden`"


def test_output_is_byte_identical_across_runs_folders_and_hash_seeds(tmp_path: Path) -> None:
    compile_examples(tmp_path / "a", ROOT, {"PYTHONHASHSEED": "1"})
    compile_examples(tmp_path / "b", tmp_path, {"PYTHONHASHSEED": "2", "TZ": "Pacific/Auckland", "LC_ALL": "C"})
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_no_stack_file_names_a_machine_path_or_a_time() -> None:
    for path, content in tree(ROOT / "stacks").items():
        text = content.decode("utf-8", errors="replace")
        assert str(ROOT) not in text, path
        assert "/home/" not in text and "/tmp/" not in text, path


def test_compile_check_passes_on_the_committed_stacks(pyagent: CLI, in_root: Path) -> None:
    run = pyagent("compile", "--check")
    assert run.code == 0, run.err


def test_every_environment_has_a_complete_stack() -> None:
    for swarm in EXAMPLES:
        for env_dir in sorted((ROOT / "stacks" / swarm).iterdir()):
            if env_dir.name == "local":
                continue
            names = {p.name for p in env_dir.iterdir()}
            assert {
                "Pulumi.yaml",
                f"Pulumi.{env_dir.name}.yaml",
                "__main__.py",
                "requirements.txt",
                "plan.json",
                "manifests",
                "README.md",
            } <= names, env_dir


@pytest.mark.parametrize("swarm", EXAMPLES)
def test_requirements_are_pinned(swarm: str) -> None:
    for req in (ROOT / "stacks" / swarm).glob("*/requirements.txt"):
        for line in req.read_text().splitlines():
            assert "==" in line, f"{req}: {line} is not pinned"
