"""No CUE input gives a traceback: damaged real specs always come back as diagnostics."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyagent_compile.diagnostics.codes import CODES
from pyagent_compile.pipeline import compile_spec
from tests.cue.cue_helpers import REPO, needs_cue

SOURCE = (REPO / "examples" / "research" / "swarm.cue").read_text()


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(REPO / "examples" / "cue.mod", root / "cue.mod")
    shutil.copytree(REPO / "examples" / "research" / "scenarios", root / "spec" / "scenarios")
    return root / "spec"


@st.composite
def damaged(draw: st.DrawFn) -> str:
    start = draw(st.integers(0, len(SOURCE)))
    end = draw(st.integers(start, min(len(SOURCE), start + 40)))
    noise = draw(st.text(alphabet=st.sampled_from(list('{}[]:,"#*|&=<>_ \n\tab01-.')), max_size=8))
    return SOURCE[:start] + noise + SOURCE[end:]


@needs_cue
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=damaged())
def test_damaged_cue_specs_give_diagnostics(module_dir: Path, text: str) -> None:
    spec = module_dir / "swarm.cue"
    spec.write_text(text)
    result = compile_spec(spec, "spec/swarm.cue")
    for diag in result.diagnostics:
        assert diag.code in CODES
        if diag.span is not None:
            assert diag.span.line >= 1 and diag.span.col >= 1
    if not result.ok:
        assert result.diagnostics
