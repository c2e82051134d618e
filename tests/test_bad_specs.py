"""The corpus of bad specs: each file is a mistake users really make, and its header says
exactly which diagnostics (code and line:col) pyagent must report, and no others."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT

BAD = sorted((ROOT / "tests" / "bad").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (PA\d{3}) (\d+):(\d+)$", re.MULTILINE)


def expected(path: Path) -> list[tuple[str, int, int]]:
    return sorted((code, int(line), int(col)) for code, line, col in EXPECT.findall(path.read_text()))


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 30
    assert all(expected(p) for p in BAD), "every bad spec states what it expects"


@pytest.mark.parametrize("spec", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_reports_exactly_the_expected_diagnostics(spec: Path, pyagent: CLI, in_root: Path) -> None:
    run = pyagent("validate", str(spec.relative_to(ROOT)), "--format", "json")
    assert run.code in (1, 2)
    document = json.loads(run.out)
    got = sorted(
        (d["code"], d["location"]["line"], d["location"]["col"]) for d in document["diagnostics"] if d["location"]
    )
    assert got == expected(spec)
    assert all(d["location"]["file"] == spec.relative_to(ROOT).as_posix() for d in document["diagnostics"])


@pytest.mark.parametrize("spec", BAD[:5], ids=[p.stem for p in BAD[:5]])
def test_text_output_shows_code_location_and_snippet(spec: Path, pyagent: CLI, in_root: Path) -> None:
    run = pyagent("validate", str(spec.relative_to(ROOT)), "--color", "never")
    code, line, col = expected(spec)[0]
    assert f"error[{code}]" in run.err
    assert f"{spec.relative_to(ROOT).as_posix()}:{line}:{col}" in run.err
    assert "^" in run.err
    assert "Traceback" not in run.err
