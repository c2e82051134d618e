"""Seeing the swarm, on a real local swarm that ran a task with a delegated sub-task:

- a real Prometheus (Debian's package, .ci/install-prometheus.sh) scrapes the nodes, and the
  PromQL of every panel of the Grafana dashboard that `pyagent compile` generated for the same
  spec returns data through Prometheus' HTTP API;
- `pyagent trace` draws the task's waterfall with the sub-task nested under its step, in text
  and JSON, and gives coded errors for an unknown task and a swarm that is down;
- every node exports the task as one OpenTelemetry trace over OTLP to a real OpenTelemetry
  Collector (native/otelcol), the sub-task's spans under the step that delegated it, from the
  node that ran it;
- `pyagent dashboard` serves its page to a real headless Chromium (Debian's package, driven by
  Selenium), which shows the swarm's map, a task submitted while it is open, that task's
  waterfall and the graphs, fetching nothing from any other origin.

One swarm serves the module (starting one is most of the time these tests take).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
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
from tests.integration import collector as otel
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
    collector: otel.Collector | None


TRACES = """
observability:
  traces:
    endpoint: {endpoint}
"""


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[otel.Collector | None]:
    running = otel.start(tmp_path_factory.mktemp("otelcol"))
    try:
        yield running
    finally:
        if running is not None:
            running.stop()


@pytest.fixture(scope="module")
def observed(
    tmp_path_factory: pytest.TempPathFactory, daemon: Path, collector: otel.Collector | None
) -> Iterator[Observed]:
    tmp = tmp_path_factory.mktemp("observe")
    name = harness.unique_name("observe", 3)
    text = spec_text(name) + (TRACES.format(endpoint=collector.endpoint) if collector else "")
    stack = harness.compile_spec(tmp, name, text)
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
        yield Observed(cluster, stack, dashboard, namespace, task_id, collector)
    finally:
        cluster.close()
        harness.down_local(stack)


# -- Prometheus --------------------------------------------------------------------------------
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
    port = harness.free_port()
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


# -- OTLP -------------------------------------------------------------------------------------
def _task_json(observed: Observed, task_id: str) -> dict[str, Any]:
    done = harness.pyagent("task", str(observed.stack.folder), task_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    task: dict[str, Any] = json.loads(done.stdout)["task"]
    return task


def _trace_spans(c: otel.Collector, trace_id: str, task_spans: int) -> list[otel.Span]:
    """The spans of one trace, once `task_spans` task spans of it have arrived (a task's own
    span is exported last, when it ends)."""

    def of_trace() -> list[otel.Span]:
        return [s for s in c.spans() if s.trace_id == trace_id]

    harness.wait_for(lambda: sum(s.name.startswith("task ") for s in of_trace()) >= task_spans, timeout=60)
    spans = of_trace()
    assert sum(s.name.startswith("task ") for s in spans) == task_spans, [s.name for s in spans]
    return spans


def _within(child: otel.Span, parent: otel.Span) -> bool:
    # Task spans take their times from the committed record (ms), steps from the node's clock.
    slack = 2_000_000
    return parent.start_ns - slack <= child.start_ns <= child.end_ns <= parent.end_ns + slack


def test_every_node_exports_the_task_as_one_otlp_trace(observed: Observed) -> None:
    c = observed.collector
    if c is None:
        pytest.skip("pyagent-otelcol is not installed: run .ci/install-otelcol.sh")
    task = _task_json(observed, observed.task_id)
    child_task = _task_json(observed, f"{observed.task_id}.outline")
    ids = task["trace"]
    assert len(ids["traceId"]) == 32 and len(ids["spanId"]) == 16 and ids["parentSpanId"] == "", ids
    assert child_task["trace"]["traceId"] == ids["traceId"]
    spans = _trace_spans(c, ids["traceId"], task_spans=2)
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans), "a span id exported twice"

    root = by_id[ids["spanId"]]
    assert (root.name, root.parent_span_id, root.status) == ("task triage", "", otel.STATUS_OK)
    assert root.attributes["pyagent.task.id"] == observed.task_id
    steps = {
        s.attributes["pyagent.step.id"]: s for s in spans if s.parent_span_id == root.span_id and s.name != "queued"
    }
    assert sorted(steps) == ["analyse", "outline", "reproduce"], [s.name for s in spans]
    for step_id, step in steps.items():
        assert step.name == f"step {step_id}" and step.attributes["pyagent.step.outcome"] == "succeeded"
        assert _within(step, root), (step, root)
    (queued,) = [s for s in spans if s.name == "queued" and s.parent_span_id == root.span_id]
    assert queued.start_ns == root.start_ns

    # The sub-task's span hangs under the attempt of the step that delegated it, in the same
    # trace, and was exported by the node that ran it.
    sub = by_id[child_task["trace"]["spanId"]]
    assert (sub.name, sub.parent_span_id) == ("task outline", steps["outline"].span_id)
    assert child_task["trace"]["parentSpanId"] == steps["outline"].span_id
    assert _within(sub, steps["outline"])
    (listing,) = [s for s in spans if s.parent_span_id == sub.span_id and s.name.startswith("step ")]
    assert listing.name == "step list"
    for owner_task, span in ((task, root), (child_task, sub)):
        assert span.resource["pyagent.node.id"] == owner_task["owner"], span.resource
        assert span.resource["service.name"] == "pyagent-node"
        assert span.resource["service.namespace"] == observed.stack.swarm
    # Every span of the trace hangs from another span of it, but the root.
    assert all(s.parent_span_id in by_id for s in spans if s is not root), [
        (s.name, s.parent_span_id) for s in spans if s.parent_span_id not in by_id
    ]


def test_a_traceparent_puts_the_task_under_the_callers_span(observed: Observed) -> None:
    c = observed.collector
    if c is None:
        pytest.skip("pyagent-otelcol is not installed: run .ci/install-otelcol.sh")
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    done = harness.pyagent(
        "run", str(observed.stack.folder), "outline", "--id", "traced-by-caller", "--wait",
        "--traceparent", f"00-{caller_trace}-{caller_span}-01",
        "--input", f"source=@{BUGGY / 'calc.py'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (task_span,) = [s for s in _trace_spans(c, caller_trace, task_spans=1) if s.name.startswith("task ")]
    assert (task_span.name, task_span.parent_span_id) == ("task outline", caller_span)

    bad = harness.pyagent(
        "run", str(observed.stack.folder), "outline", "--id", "traced-badly",
        "--traceparent", "00-xyz-00f067aa0ba902b7-01", "--input", f"source=@{BUGGY / 'calc.py'}",
    )  # fmt: skip
    assert bad.returncode != 0 and "PA706" in bad.stderr and "traceparent" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


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


# -- pyagent dashboard, in a real browser ----------------------------------------------------------
# Screenshots go to this folder when PYAGENT_DOCS_SCREENSHOTS is set (docs/images/ holds the last ones).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"


@dataclass
class Board:
    url: str
    base: str
    token: str


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The URL line the dashboard prints once it listens; its stderr if it exits instead."""
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        found.append(process.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found or not found[0]:
        process.kill()
        _, err = process.communicate(timeout=30)
        raise AssertionError(f"pyagent dashboard printed no URL: {err}")
    return found[0].strip()


@pytest.fixture
def board(observed: Observed) -> Iterator[Board]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pyagent_compile", "dashboard", str(observed.stack.folder), "--listen", "127.0.0.1:0",
         "--interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=harness.ROOT,
    )  # fmt: skip
    try:
        line = _first_line(process, timeout=60)
        match = re.search(r"(http://127\.0\.0\.1:\d+)/#token=(\S+)$", line)
        assert match, line
        yield Board(match.group(0), match.group(1), match.group(2))
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_dashboard_api_needs_the_token_and_is_read_only(board: Board) -> None:
    assert _get(f"{board.base}/api/swarm")[0] == 401
    assert _get(f"{board.base}/api/swarm", token="x" * 32)[0] == 401
    status, headers, body = _get(f"{board.base}/api/swarm", token=board.token)
    assert status == 200 and json.loads(body)["leader"] is not None
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert _get(f"{board.base}/api/swarm", token=board.token, method="POST")[0] == 405
    assert _get(f"{board.base}/api/tasks/no-such-task", token=board.token)[0] == 404
    # The page's files and nothing beside them.
    assert _get(f"{board.base}/static/app.js")[0] == 200
    assert _get(f"{board.base}/static/../server.py")[0] == 404
    assert _get(f"{board.base}/static/%2e%2e/server.py")[0] == 404


def test_dashboard_in_chromium_shows_the_swarm_and_a_task_as_it_runs(
    observed: Observed, board: Board, tmp_path: Path
) -> None:
    browser = _chromium()
    try:
        browser.get(board.url)
        nodes = len(observed.stack.nodes)
        _until(browser, f"return document.querySelectorAll('#map g.node').length === {nodes} "
                        "&& document.querySelectorAll('#map g.node[data-role=Leader]').length === 1")  # fmt: skip
        # Raft replication links: from the leader to every other node.
        assert browser.execute_script("return document.querySelectorAll('#map path.link').length") == nodes - 1
        # Mesh connections: with 30 neighbours allowed, every pair of the 3 nodes holds one.
        pairs = nodes * (nodes - 1) // 2
        _until(browser, f"return document.querySelectorAll('#map path.mesh-link').length === {pairs}")
        ids = sorted(n.id for n in observed.stack.nodes)
        drawn = browser.execute_script(
            "return [...document.querySelectorAll('#map path.mesh-link')].map(l => l.dataset.pair).sort()"
        )
        assert drawn == sorted(f"{a}-{b}" for a in ids for b in ids if a < b), drawn
        assert browser.find_element("id", "health").text == "healthy"
        _until(browser, f"return !!document.querySelector('#tasks tr[data-task=\"{observed.task_id}\"]')")

        # A task submitted while the page is open appears, and ends, without a reload.
        started = harness.pyagent(
            "run", str(observed.stack.folder), "triage", "--id", "observed-live",
            "--input", f"source=@{BUGGY / 'calc.py'}", "--input", f"tests=@{BUGGY / 'test_calc.py'}",
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        live = '#tasks tr[data-task="observed-live"]'
        _until(browser, f"return !!document.querySelector('{live}')")
        _until(browser, f"return document.querySelector('{live} td.state').textContent === 'succeeded'", timeout=120)

        # Its waterfall: the task, its three steps, and the delegated sub-task nested under `outline`.
        browser.find_element("css selector", live).click()
        _until(browser, "return document.querySelectorAll('#trace .wf-row[data-kind=task]').length === 2")
        labels = browser.execute_script(
            "return [...document.querySelectorAll('#trace .wf-label')].map(e => e.textContent)"
        )
        assert labels[0].startswith("observed-live (triage)"), labels
        assert [label.split(" ")[0] for label in labels[1:4]] == ["reproduce", "analyse", "outline"], labels
        assert labels[4].startswith("observed-live.outline (outline)"), labels
        assert browser.execute_script("return document.querySelectorAll('#trace .wf-bar.succeeded').length") == 6

        # The graphs have points, and the page fetched nothing from anywhere but its server.
        _until(browser, "return document.querySelectorAll('#graphs canvas').length === 4 "
                        "&& window.pyagentDashboard.metrics.series.t.length >= 2")  # fmt: skip
        origins = browser.execute_script(
            "return [...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).origin))]"
        )
        assert origins == [board.base], origins
        assert browser.execute_script("return window.pyagentDashboard.error") == ""
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        _screenshots(browser, tmp_path)
    finally:
        browser.quit()


def _chromium() -> Any:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("headless Chromium is not installed: run .ci/install-chromium.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def _until(browser: Any, script: str, timeout: float = 60) -> None:
    """Polls a JavaScript condition; on timeout says what the page last showed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if browser.execute_script(script):
            return
        time.sleep(0.2)
    shown = browser.execute_script(
        "const s = window.pyagentDashboard; return JSON.stringify({error: s.error, polls: s.polls, tasks: s.tasks})"
    )
    raise AssertionError(f"not true within {timeout} s: {script}\npage: {shown}")


def _screenshots(browser: Any, tmp_path: Path) -> None:
    folder = SCREENSHOTS if os.environ.get("PYAGENT_DOCS_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(folder / "dashboard.png"))
    assert (folder / "dashboard.png").stat().st_size > 10_000


# Last in the module: it adds tasks that the dashboard and Prometheus tests above do not expect.
def test_tool_calls_are_spans_of_their_steps_and_failures_are_errors(observed: Observed) -> None:
    """An MCP tool call (mcp-server-time, in the task's sandbox) is a client span under its step's
    attempt; a tool error makes the call, the step and the task spans errors."""
    c = observed.collector
    if c is None:
        pytest.skip("pyagent-otelcol is not installed: run .ci/install-otelcol.sh")
    folder = str(observed.stack.folder)
    for task_id, manifest, args in (
        ("clock-traced", "clock", ["--input", "zone=Europe/Paris"]),
        ("badclock-traced", "badclock", []),
    ):
        harness.pyagent("run", folder, manifest, "--id", task_id, "--wait", *args)

    ok = _task_json(observed, "clock-traced")
    assert ok["state"] == "succeeded", ok
    spans = _trace_spans(c, ok["trace"]["traceId"], task_spans=1)
    steps = {s.attributes["pyagent.step.id"]: s for s in spans if s.name.startswith("step ")}
    calls = {s.attributes["gen_ai.tool.name"]: s for s in spans if s.name.startswith("tools/call ")}
    assert sorted(calls) == ["convert_time", "get_current_time"], [s.name for s in spans]
    for step_id, tool in (("ask", "get_current_time"), ("convert", "convert_time")):
        call = calls[tool]
        assert call.parent_span_id == steps[step_id].span_id and call.status == otel.STATUS_OK
        assert call.attributes["mcp.method.name"] == "tools/call" and call.attributes["pyagent.mcp.server"] == "time"
        assert _within(call, steps[step_id])

    bad = _task_json(observed, "badclock-traced")
    assert (bad["state"], bad["errorCode"]) == ("failed", "PA735"), bad
    spans = _trace_spans(c, bad["trace"]["traceId"], task_spans=1)
    (task_span,) = [s for s in spans if s.name == "task badclock"]
    attempts = [s for s in spans if s.name == "step ask"]
    calls_made = [s for s in spans if s.name == "tools/call get_current_time"]
    assert task_span.status == otel.STATUS_ERROR and task_span.attributes["error.type"] == "PA735"
    # One span per attempt, each with its own call under it, all errors.
    assert len(attempts) == len(calls_made) >= 1, [s.name for s in spans]
    assert sorted(s.attributes["pyagent.step.attempt"] for s in attempts) == list(range(1, len(attempts) + 1))
    assert {call.parent_span_id for call in calls_made} == {a.span_id for a in attempts}
    assert all(s.status == otel.STATUS_ERROR and s.attributes["error.type"] == "PA735" for s in attempts + calls_made)
