"""The CUE loader: finding cue, positions carried into the Document, packages, error text."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyagent_compile.load import load_document
from pyagent_compile.load.cue import CUE_ENV, CUEPOS_ENV, parse_errors, split_path
from pyagent_compile.load.document import format_path
from tests.cue.cue_helpers import REPO, needs_cue, run_pyagent

RESEARCH = REPO / "examples" / "research"


def test_missing_cue_is_a_clear_error_and_yaml_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CUE_ENV, "/nonexistent/cue")
    doc, diags = load_document(RESEARCH / "swarm.cue", "examples/research/swarm.cue")
    assert doc is None
    (diag,) = diags
    assert diag.code == "PA125"
    assert "install-cue.sh" in diag.help and CUE_ENV in diag.help
    monkeypatch.setenv("PATH", "/nonexistent")
    doc, diags = load_document(RESEARCH / "swarm.yaml", "examples/research/swarm.yaml")
    assert doc is not None and not diags


def test_missing_cue_exit_code_is_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CUE_ENV, "/nonexistent/cue")
    monkeypatch.setenv(CUEPOS_ENV, "/nonexistent/cuepos")
    done = run_pyagent("validate", "examples/research/swarm.cue")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PA125" in done.stdout + done.stderr


@needs_cue
def test_positions_point_at_the_cue_source() -> None:
    doc, diags = load_document(RESEARCH / "swarm.cue", "examples/research/swarm.cue")
    assert doc is not None and not diags
    lines = (RESEARCH / "swarm.cue").read_text().splitlines()

    def text_at(path: tuple[str | int, ...]) -> str:
        span = doc.values[path]
        assert span.file == "examples/research/swarm.cue"
        return lines[span.line - 1][span.col - 1 :]

    assert text_at(("nodes", "h100", "replicas")).startswith("2")
    assert text_at(("nodes", "h100", "cores", 1)).startswith('"security"')
    assert text_at(("metadata", "name")).startswith('"research"')
    # A value made by a pattern constraint points at the pattern that made it.
    assert text_at(("nodes", "control", "placement", "region")).startswith('"us-east-1"')
    # A value made by a comprehension points into the comprehension.
    assert "ruleName" in text_at(("firewall", "rules", 0, "name"))
    key = doc.keys[("nodes", "cpu-workers")]
    assert lines[key.line - 1][key.col - 1 :].startswith('"cpu-workers"')


@needs_cue
def test_a_package_with_one_file_per_environment(tmp_path: Path) -> None:
    """A CUE package: the base in one file, each environment in its own, unified by CUE."""
    shutil.copytree(REPO / "examples" / "cue.mod", tmp_path / "cue.mod")
    shutil.copytree(RESEARCH / "scenarios", tmp_path / "research" / "scenarios")
    source = (RESEARCH / "swarm.cue").read_text()
    base, _, envs = source.partition("\nenvironments: {")
    (tmp_path / "research" / "swarm.cue").write_text(base)
    (tmp_path / "research" / "dev.cue").write_text(
        "package research\n\nenvironments: dev: overrides: nodes: {\n\th100: replicas: 1\n"
        '\t"cpu-workers": replicas: 2\n}\n'
    )
    # The prod environment's whole block, from `prod:` to the end of `environments: {`.
    prod = envs[envs.index("\tprod: overrides: {") : envs.rindex("\n}")].strip()
    assert "image: ref:" in prod and "observability:" in prod, prod
    (tmp_path / "research" / "prod.cue").write_text(f"package research\n\nenvironments: {prod}\n")
    out_cue, out_yaml = tmp_path / "out-cue", tmp_path / "out-yaml"
    done = run_pyagent("compile", str(tmp_path / "research"), "--out", str(out_cue))
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_pyagent("compile", "examples/research/swarm.yaml", "--out", str(out_yaml))
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(p.relative_to(out_yaml) for p in out_yaml.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(out_cue) for p in out_cue.rglob("*") if p.is_file())
    for rel in files:
        assert (out_cue / rel).read_bytes() == (out_yaml / rel).read_bytes(), rel


@needs_cue
def test_an_error_in_an_environment_file_points_at_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "cue.mod", tmp_path / "cue.mod")
    shutil.copytree(RESEARCH / "scenarios", tmp_path / "research" / "scenarios")
    (tmp_path / "research" / "swarm.cue").write_text((RESEARCH / "swarm.cue").read_text())
    (tmp_path / "research" / "staging.cue").write_text(
        "package research\n\nenvironments: staging: overrides: nodes: h100: replicas: 0\n"
    )
    done = run_pyagent("validate", str(tmp_path / "research"), cwd=tmp_path)
    assert done.returncode == 1
    assert "research/staging.cue:3:58" in done.stderr + done.stdout, done.stderr


CUE_TEXT = """\
nodes.control.roles: 2 errors in empty disjunction:
nodes.control.roles.1: conflicting values "gateway" and "leader":
    ./cue.mod/pkg/pyagent.dev/swarm/swarm.cue:57:50
    ./t1.cue:11:20
nodes."cpu-workers".replicas: invalid value 0 (out of bound >=1):
    ./cue.mod/pkg/pyagent.dev/swarm/swarm.cue:56:19
    ./t1.cue:12:13
"""


def test_parse_errors_builds_the_disjunction_tree() -> None:
    errors = parse_errors(CUE_TEXT)
    assert [e.path for e in errors] == ["nodes.control.roles", 'nodes."cpu-workers".replicas']
    assert errors[0].is_group and errors[0].children[0].path == "nodes.control.roles.1"
    assert errors[1].positions == [("./cue.mod/pkg/pyagent.dev/swarm/swarm.cue", 56, 19), ("./t1.cue", 12, 13)]


def test_split_path_reads_quoted_labels_and_indexes() -> None:
    assert split_path('nodes."cpu-workers".roles.1') == ("nodes", "cpu-workers", "roles", 1)


_LABEL = st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"\\'), min_size=1)


@given(st.lists(st.one_of(_LABEL, st.integers(0, 999)), min_size=1, max_size=6))
def test_split_path_inverts_cue_path_printing(parts: list[str | int]) -> None:
    """CUE prints identifiers bare, other labels quoted and list indexes as numbers."""
    printed = ".".join(
        str(p) if isinstance(p, int) else (p if re.fullmatch(r"[A-Za-z_$][\w$]*", p) else f'"{p}"') for p in parts
    )
    assert format_path(split_path(printed)) == format_path(tuple(parts))


@needs_cue
def test_a_stale_vendored_schema_is_a_warning(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "cue.mod", tmp_path / "cue.mod")
    shutil.copytree(RESEARCH, tmp_path / "research")
    vendored = tmp_path.joinpath("cue.mod", "pkg", "pyagent.dev", "swarm", "swarm.cue")
    vendored.write_text(vendored.read_text() + "\n// an older copy\n")
    doc, diags = load_document(tmp_path / "research" / "swarm.cue", "research/swarm.cue")
    assert doc is not None
    assert [(d.code, d.severity.value) for d in diags] == [("PA127", "warning")]


@needs_cue
def test_a_user_module_vendors_the_schema_and_compiles(tmp_path: Path) -> None:
    """The documented path for a user: `cue mod init`, vendor the schema, import it."""
    from pyagent_compile.load.cue import find_cue

    cue = find_cue()
    assert cue is not None
    subprocess.run([cue, "mod", "init", "example.com/platform"], cwd=tmp_path, check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "pyagent_compile.model.cue_schema", "--vendor", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (tmp_path / "swarm.cue").write_text(
        'package platform\n\nimport "pyagent.dev/swarm"\n\nswarm.#Swarm & {\n'
        '\tapiVersion: "pyagent.dev/v1alpha1"\n\tkind: "Swarm"\n\tmetadata: name: "demo"\n'
        '\timage: build: "native"\n'
        '\tnodes: agents: {replicas: 3, roles: ["voter", "worker"], hardware: {cpu: 1, memory: "2Gi"}, cores: ["c"]}\n'
        '\tcores: c: tools: [{name: "git", command: ["mcp-server-git"]}]\n'
        "\tmemory: kv: capacity: blocks: 64\n\tenvironments: dev: {}\n}\n"
    )
    done = run_pyagent("compile", "swarm.cue", "--out", "stacks", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "stacks" / "demo" / "dev").is_dir()


@needs_cue
def test_one_file_of_a_package_warns_that_the_rest_was_not_read(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "cue.mod", tmp_path / "cue.mod")
    shutil.copytree(RESEARCH, tmp_path / "research")
    (tmp_path / "research" / "prod.cue").write_text("package research\n")
    doc, diags = load_document(tmp_path / "research" / "swarm.cue", "research/swarm.cue")
    assert doc is not None
    assert [(d.code, d.severity.value) for d in diags] == [("PA128", "warning")]
    assert "prod.cue" in diags[0].message and diags[0].help.endswith("research")
