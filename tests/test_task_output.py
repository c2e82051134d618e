"""How `pyagent run --wait` and `pyagent task` show a task's outputs in text: each kind of value
the steps produce as people read it (the whole of it stays in `--format json`)."""

from __future__ import annotations

from pyagent_compile.commands.tasks import _output_lines


def test_a_trace_shows_its_command_exit_and_streams() -> None:
    trace = {"command": ["python3", "t.py"], "exitCode": 1, "isolation": "namespaces", "elapsedMs": 9, "stderr": "E\n"}
    assert _output_lines("failure", trace) == [
        "  failure: `python3 t.py` exited 1 (namespaces, 9 ms)",
        "    stderr:",
        "      E",
    ]


def test_a_report_shows_its_summary() -> None:
    report = {"kind": "python-traceback", "summary": "AssertionError: 1 != 2 at t.py:8 in test_x", "failures": []}
    assert _output_lines("diagnosis", report) == ["  diagnosis: AssertionError: 1 != 2 at t.py:8 in test_x"]


def test_a_verdict_shows_whether_it_passed_and_what_failed() -> None:
    checks = [
        {"check": "the task ends succeeded", "passed": True, "expected": "succeeded", "actual": "succeeded"},
        {"check": "output failure at /exitCode equals 1", "passed": False, "expected": 1, "actual": 0},
    ]
    verdict = {"scenario": "calc", "passed": False, "task": "t.v", "state": "succeeded", "checks": checks}
    assert _output_lines("verdict", verdict) == [
        "  verdict: scenario calc FAILED",
        "    failed: output failure at /exitCode equals 1 (got 0)",
    ]
    assert _output_lines("verdict", {**verdict, "passed": True, "checks": checks[:1]}) == [
        "  verdict: scenario calc passed"
    ]


def test_anything_else_is_json() -> None:
    assert _output_lines("now", {"timezone": "UTC"}) == ['  now: {"timezone": "UTC"}']
