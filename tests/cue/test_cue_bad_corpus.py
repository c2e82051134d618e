"""The corpus of bad CUE specs: each file is a mistake users make, with the exact diagnostics.

Every file in tests/cue/bad/ (a package of its own, so that each is read alone) starts
with a comment saying what is wrong and one
`// expect: CODE line:col` line per diagnostic the whole pipeline must produce (CUE's own
errors, and pyagent's model rules and checks, which must point at the .cue lines too).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.diagnostics.codes import CODES
from pyagent_compile.pipeline import compile_spec
from tests.cue.cue_helpers import REPO, needs_cue

BAD = REPO / "tests" / "cue" / "bad"
CASES = sorted(BAD.glob("*.cue"))
_EXPECT = re.compile(r"^// expect: (PA\d{3}) (\d+):(\d+)$", re.M)


def expected(path: Path) -> list[tuple[str, int, int]]:
    return sorted((code, int(line), int(col)) for code, line, col in _EXPECT.findall(path.read_text()))


def compile_bad(path: Path) -> list[Diagnostic]:
    display = path.relative_to(REPO).as_posix()
    return compile_spec(path, display).diagnostics


def test_corpus_is_large_enough_and_annotated() -> None:
    assert len(CASES) >= 15
    for path in CASES:
        assert expected(path), f"{path.name} has no `// expect:` line"


@needs_cue
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_spec(path: Path) -> None:
    diags = compile_bad(path)
    got = sorted((d.code, d.span.line, d.span.col) for d in diags if d.span is not None)
    assert got == expected(path), "\n".join(f"{d.code} {d.span} {d.path}: {d.message}" for d in diags)
    display = path.relative_to(REPO).as_posix()
    for diag in diags:
        assert diag.code in CODES
        assert diag.span is not None and diag.span.file == display  # the user's file, not the schema


@needs_cue
def test_every_position_cue_reports_is_shown() -> None:
    """An out-of-bound value shows the value (primary) and the schema's bound (secondary)."""
    (diag,) = compile_bad(BAD / "replicas-zero.cue")
    assert diag.path == "nodes.control.replicas"
    assert diag.span is not None and (diag.span.line, diag.span.col) == (13, 13)
    schema = [label for label in diag.secondary if label.span.file.endswith("pyagent.dev/swarm/swarm.cue")]
    assert schema and schema[0].message == "constraint in the schema"
    text = (BAD / "cue.mod/pkg/pyagent.dev/swarm/swarm.cue").read_text().splitlines()[schema[0].span.line - 1]
    assert text[schema[0].span.col - 1 :].startswith(">=1")


@needs_cue
def test_conflict_shows_both_places() -> None:
    (diag,) = compile_bad(BAD / "conflicting-values.cue")
    assert diag.code == "PA121"
    places = {(label.span.line, label.span.col) for label in diag.secondary}
    assert (22, 28) in places  # `nodes: control: replicas: 5`, the other value


@needs_cue
def test_word_typo_gets_choices_and_a_suggestion() -> None:
    (diag,) = compile_bad(BAD / "role-not-a-role.cue")
    assert diag.path == "nodes.control.roles[1]"
    assert diag.message == '"leader" is not one of: "gateway", "voter", "worker"'
