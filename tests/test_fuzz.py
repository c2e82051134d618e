"""Property-based fuzzing: no text or bytes, however broken, gives a traceback."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyagent_compile.load import load_document
from pyagent_compile.load.text import decode
from pyagent_compile.load.yaml import parse_yaml
from pyagent_compile.model.build import build_swarm
from pyagent_compile.pipeline import compile_spec
from tests.conftest import ROOT

YAML_ALPHABET = st.sampled_from([*list("abc:-[]{}&*!|>'\"#?,. \n\t0123456789~@%`"), "<<", "---", "..."])
EXAMPLE = (ROOT / "examples" / "research" / "swarm.yaml").read_text()


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_loads_or_gives_diagnostics(text: str) -> None:
    doc, diags = parse_yaml(text, "f.yaml")
    assert (doc is None) == bool(diags)


@settings(max_examples=400, deadline=None)
@given(st.lists(YAML_ALPHABET, max_size=80).map("".join))
def test_yaml_shaped_noise_never_raises(text: str) -> None:
    doc, _diags = parse_yaml(text, "f.yaml")
    if doc is not None:
        build_swarm(doc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_decode_or_give_diagnostics(raw: bytes) -> None:
    text, diags = decode(raw, "f.yaml")
    assert (text is None) == bool(diags)
    if text is not None:
        parse_yaml(text, "f.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(min_value=0, max_value=len(EXAMPLE) - 1), st.integers(min_value=1, max_value=40), st.text(max_size=8)
)
def test_a_damaged_real_spec_never_raises(tmp_path: Path, start: int, length: int, junk: str) -> None:
    damaged = EXAMPLE[:start] + junk + EXAMPLE[start + length :]
    spec = tmp_path / "swarm.yaml"
    spec.write_text(damaged, encoding="utf-8")
    result = compile_spec(spec, "swarm.yaml")
    assert result.ok or result.diagnostics
    for diag in result.diagnostics:
        assert diag.code.startswith("PA")


def test_a_directory_and_a_missing_file_are_diagnostics(tmp_path: Path) -> None:
    folder = tmp_path / "spec.yaml"
    folder.mkdir()
    for path in (folder, tmp_path / "missing.yaml"):
        doc, diags = load_document(path, path.name)
        assert doc is None and [d.code for d in diags] == ["PA100"]
