"""The laptop example's "Fix this bug" manifest end to end on a real local swarm: the failing test
reproduced in the sandbox, its trace analysed, CoRT rounds against llama.cpp's server (a tiny
random-weights model the test writes: this proves the plumbing, not the reasoning), and the
triage scenario verified: every step kind but `mcp` and `delegate` in one task, and those two
inside the scenario's own task. Every model request is a span of the `cort` step in the task's
OpenTelemetry trace, received by a real collector (native/otelcol)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.integration import collector as otel
from tests.integration import harness
from tests.integration.test_tasks import _json, _llama_server

ROOT = Path(__file__).resolve().parents[2]
LAPTOP = ROOT / "examples" / "laptop"
ENDPOINT = "http://127.0.0.1:8080/v1"


TRACES = """
observability:
  traces:
    endpoint: {endpoint}
"""


def _model_calls_are_spans_of_the_cort_step(c: otel.Collector, task: dict[str, Any], requests: int) -> None:
    def spans() -> list[otel.Span]:
        return [s for s in c.spans() if s.trace_id == task["trace"]["traceId"]]

    harness.wait_for(lambda: any(s.name == "task fix-bug" for s in spans()), timeout=60)
    (reason,) = [s for s in spans() if s.name == "step reason"]
    chats = [s for s in spans() if s.name == "chat local"]
    assert len(chats) == requests, [s.name for s in spans()]
    for chat in chats:
        assert chat.parent_span_id == reason.span_id and chat.status == otel.STATUS_OK
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == "local"
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0, chat.attributes
        assert reason.start_ns <= chat.start_ns <= chat.end_ns <= reason.end_ns


def test_fix_this_bug_runs_every_step_for_real(tmp_path: Path, daemon: Path) -> None:
    collector = otel.start(tmp_path / "otelcol")
    try:
        _fix_this_bug(tmp_path, daemon, collector)
    finally:
        if collector is not None:
            collector.stop()


def _fix_this_bug(tmp_path: Path, daemon: Path, collector: otel.Collector | None) -> None:
    for folder in ("buggy", "scenarios"):
        shutil.copytree(LAPTOP / folder, tmp_path / folder)
    name = harness.unique_name("fixbug", 3)
    text = (LAPTOP / "swarm.yaml").read_text(encoding="utf-8")
    assert ENDPOINT in text and "name: laptop\n" in text
    # The tiny model's tokens are bytes: the prompt (the source and the whole analysis) is ~2,100.
    with _llama_server(tmp_path, n_ctx=8192) as endpoint:
        # The example as written, but for its name, its model server and short answers.
        spec = text.replace("name: laptop\n", f"name: {name}\n", 1).replace(ENDPOINT, endpoint)
        if collector is not None:
            spec += TRACES.format(endpoint=collector.endpoint)
        stack = harness.compile_spec(tmp_path, name, spec.replace("maxTokens: 512", "maxTokens: 16"))
        cluster = harness.up_local(stack, daemon)
        try:
            done = harness.pyagent(
                "run", str(stack.folder), "fix-bug", "--wait", "--format", "json", "--timeout", "600",
                "--input", f"source=@{tmp_path / 'buggy' / 'calc.py'}",
                "--input", f"tests=@{tmp_path / 'buggy' / 'test_calc.py'}",
            )  # fmt: skip
            task = _json(done)["task"]
            assert done.returncode == 0 and task["state"] == "succeeded", json.dumps(task["steps"])
            assert [s["kind"] for s in task["steps"]] == ["sandbox", "analyze-trace", "cort", "verify"]
            outputs = task["outputs"]
            assert "AssertionError" in outputs["diagnosis"]["summary"], outputs["diagnosis"]
            reasoning = outputs["reasoning"]
            assert reasoning["requests"] == 1 + 2 * (2 + 1) and "AssertionError" in reasoning["prompt"], reasoning
            verdict = outputs["verdict"]
            assert verdict["passed"] is True and all(c["passed"] for c in verdict["checks"]), verdict
            # The scenario ran as the verify step's own sub-task: triage, with its delegate.
            child = _json(harness.pyagent("task", str(stack.folder), verdict["task"], "--format", "json"))["task"]
            assert (child["manifest"], child["state"], child["parent"]) == ("triage", "succeeded", task["id"])
            if collector is not None:
                _model_calls_are_spans_of_the_cort_step(collector, task, reasoning["requests"])
        finally:
            cluster.close()
            harness.down_local(stack)
