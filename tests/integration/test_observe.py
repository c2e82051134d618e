"""Seeing the swarm, on a real local swarm that ran a task with a delegated sub-task:

- a real Prometheus (Debian's package, .ci/install-prometheus.sh) scrapes the nodes, and the
  PromQL of every panel of the Grafana dashboard that `pyagent compile` generated for the same
  spec returns data through Prometheus' HTTP API;
- `pyagent trace` draws the task's waterfall with the sub-task nested under its step, in text
  and JSON, and gives coded errors for an unknown task and a swarm that is down.

One swarm serves the module (starting one is most of the time these tests take).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyagent_compile.plan.dashboard import panel_queries
from pyagent_compile.runtime.local.stack import LocalStack
from tests.integration import harness
from tests.integration.test_tasks import BUGGY, spec_text

# Prometheus' scrape interval here; `$__rate_interval` is Grafana's, at least four of them.
SCRAPE_SECONDS = 1
RATE_WINDOW = "15s"


@dataclass
class Observed:
    cluster: harness.Cluster
    stack: LocalStack
    dashboard: dict[str, Any]
    namespace: str
    task_id: str


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, daemon: Path) -> Iterator[Observed]:
    tmp = tmp_path_factory.mktemp("observe")
    name = harness.unique_name("observe", 3)
    stack = harness.compile_spec(tmp, name, spec_text(name))
    # The Kubernetes stack of the same spec: the dashboard a user would load.
    done = harness.pyagent("compile", str(tmp / "swarm.yaml"), "--out", str(tmp / "stacks"), "--env", "dev")
    assert done.returncode == 0, done.stderr
    (board,) = (tmp / "stacks" / name / "dev" / "dashboards").glob("*.json")
    dashboard = json.loads(board.read_text())
    # The local stack's dashboard is the same but for the namespace its variable defaults to,
    # the label its prometheus.yml gives the targets.
    (local_board,) = (stack.folder / "dashboards").glob("*.json")
    local = json.loads(local_board.read_text())
    assert panel_queries(local) == panel_queries(dashboard)
    namespace = next(v for v in local["templating"]["list"] if v["name"] == "namespace")["current"]["value"]
    cluster = harness.up_local(stack, daemon)
    try:
        task_id = "observed-1"
        run = harness.pyagent(
            "run", str(stack.folder), "triage", "--id", task_id, "--wait", "--format", "json",
            "--input", f"source=@{BUGGY / 'calc.py'}", "--input", f"tests=@{BUGGY / 'test_calc.py'}",
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        yield Observed(cluster, stack, dashboard, namespace, task_id)
    finally:
        cluster.close()
        harness.down_local(stack)


# -- Prometheus --------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _prometheus_config(observed: Observed) -> str:
    """The local stack's generated prometheus.yml (targets labelled `namespace` and `pod` as a
    PodMonitor labels them), scraping every second instead of the spec's interval."""
    config = yaml.safe_load((observed.stack.folder / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"}
    return yaml.safe_dump(config)


def _api(base: str, path: str, **params: str) -> dict[str, Any]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def _ready(base: str) -> bool:
    """/-/ready answers 200 once the storage is open and the scrape loops run."""
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def prometheus(observed: Observed, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed: run .ci/install-prometheus.sh")
    config = tmp_path / "prometheus.yml"
    config.write_text(_prometheus_config(observed))
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        harness.wait_for(lambda: process.poll() is not None or _ready(base), timeout=60)
        assert process.poll() is None, harness.log_tail(tmp_path / "prometheus.log")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _targets_up(base: str, count: int) -> bool:
    active = _api(base, "/api/v1/targets")["data"]["activeTargets"]
    return len(active) == count and all(t["health"] == "up" for t in active)


def _as_prometheus_runs_it(expr: str, namespace: str) -> str:
    """The query Grafana sends: its variables replaced by their values."""
    return expr.replace("$namespace", namespace).replace("$__rate_interval", RATE_WINDOW)


def _result(base: str, query: str) -> list[Any]:
    answer = _api(base, "/api/v1/query", query=query)
    assert answer["status"] == "success", answer
    result: list[Any] = answer["data"]["result"]
    return result


def test_every_dashboard_panel_has_data_in_a_real_prometheus(observed: Observed, prometheus: str) -> None:
    nodes = len(observed.stack.nodes)
    harness.wait_for(lambda: _targets_up(prometheus, nodes), timeout=60)
    # Another task after the first scrapes, so counters move inside the rate windows.
    again = harness.pyagent(
        "run", str(observed.stack.folder), "outline", "--id", "observed-2", "--wait",
        "--input", f"source=@{BUGGY / 'calc.py'}",
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    queries = panel_queries(observed.dashboard)
    assert len(queries) >= 20
    empty: dict[str, str] = {}
    deadline = time.monotonic() + 60
    pending = list(queries)
    while pending and time.monotonic() < deadline:
        still = []
        for title, expr in pending:
            query = _as_prometheus_runs_it(expr, observed.namespace)
            if not _result(prometheus, query):
                still.append((title, expr))
                empty[title] = query
        pending = still
        if pending:
            time.sleep(SCRAPE_SECONDS)
    assert not pending, f"panels without data: {json.dumps({t: empty[t] for t, _ in pending}, indent=1)}"

    # The figures mean what the panels say: one leader, the tasks that ran, all nodes up.
    def value(query: str) -> float:
        return float(_result(prometheus, query.replace("NS", f'namespace="{observed.namespace}"'))[0]["value"][1])

    assert value("sum(pyagent_raft_is_leader{NS})") == 1
    # triage, its sub-task and outline, once a scrape after the last one ended has landed
    harness.wait_for(lambda: value('max(pyagent_tasks{NS,state="succeeded"})') == 3, timeout=30)
    assert value("sum(up{NS})") == nodes


# -- pyagent trace -----------------------------------------------------------------------------
def test_trace_shows_the_task_with_its_delegated_sub_task_nested(observed: Observed) -> None:
    folder = str(observed.stack.folder)
    done = harness.pyagent("trace", folder, observed.task_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    trace = json.loads(done.stdout)["trace"]
    assert (trace["id"], trace["state"], trace["placements"]) == (observed.task_id, "succeeded", 1)
    assert trace["owner"] in {n.id for n in observed.stack.nodes}
    assert [s["id"] for s in trace["steps"]] == ["reproduce", "analyse", "outline"]
    for step in trace["steps"]:
        assert 0 <= step["startedOffsetMs"] <= step["finishedOffsetMs"] <= trace["finishedOffsetMs"], step
    child = trace["steps"][2]["task"]
    assert (child["id"], child["core"], child["state"]) == (f"{observed.task_id}.outline", "researcher", "succeeded")
    assert [s["id"] for s in child["steps"]] == ["list"]
    # The sub-task runs inside its delegate step's span.
    delegate = trace["steps"][2]
    assert delegate["startedOffsetMs"] <= child["submittedOffsetMs"] <= child["finishedOffsetMs"]
    assert child["finishedOffsetMs"] <= delegate["finishedOffsetMs"]

    text = harness.pyagent("trace", folder, observed.task_id)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"trace {observed.task_id} (triage, core coder): ok")
    # Piped: plain ASCII, bars aligned, the sub-task's rows indented under its step.
    assert text.stdout.isascii() and "\x1b[" not in text.stdout
    bars = [line for line in lines[1:] if "|" in line]
    assert len({line.index("|") for line in bars}) == 1, text.stdout
    # A label: its indentation and words with single spaces; two spaces end it.
    labels = [m.group(1) for line in bars[1:] if (m := re.match(r"^( *\S+(?: \S+)*)", line))]
    outline = labels.index("  outline")
    assert labels[outline + 1] == f"    task {observed.task_id}.outline", text.stdout
    assert "      list" in labels[outline + 1 :], text.stdout


def test_trace_of_an_unknown_task_is_a_coded_error(observed: Observed) -> None:
    done = harness.pyagent("trace", str(observed.stack.folder), "no-such-task")
    assert done.returncode == 2 and "PA708" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_trace_on_a_swarm_that_is_down_is_a_coded_error(tmp_path: Path, daemon: Path) -> None:
    """PA705, never a traceback: for a stack never started (no key to sign with) and for one
    stopped after it ran (no node answers within --timeout)."""
    name = harness.unique_name("tracedown", 3)
    stack = harness.compile_spec(tmp_path, name, spec_text(name))
    folder = str(stack.folder)
    never = harness.pyagent("trace", folder, "x", "--timeout", "2")
    assert never.returncode != 0 and "PA705" in never.stderr and "Traceback" not in never.stderr, never.stderr
    harness.up_local(stack, daemon).close()
    try:
        stopped = harness.pyagent("down", folder, "--timeout", "5")
        assert stopped.returncode == 0, stopped.stderr
        done = harness.pyagent("trace", folder, "x", "--timeout", "2")
        assert done.returncode != 0 and "PA705" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert "answered" in done.stderr, done.stderr
    finally:
        harness.down_local(stack)
