"""Tasks on a real local swarm: submitted with the CLI, committed by Raft, placed on a worker,
their sandbox steps run in pyagent-sandbox, delegated sub-tasks placed on their own, and a node
killed mid-task replaced without running a committed step twice."""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyagent_compile.runtime.local.stack import LocalStack
from tests.integration import harness

ROOT = Path(__file__).resolve().parents[2]
BUGGY = ROOT / "examples" / "laptop" / "buggy"

SPEC = """\
apiVersion: pyagent.dev/v1alpha1
kind: Swarm
metadata:
  name: {name}
image:
  build: native
nodes:
  agents:
    replicas: 3
    roles: [voter, worker]
    hardware:
      cpu: 1
      memory: 1Gi
    cores: [coder, researcher]
    sandbox: {{minIsolation: namespaces, workspace: 1Mi}}
cores:
  coder:
    resources: {{cpu: 500m, memory: 256Mi}}
    tools:
      - {{name: time, command: ["{mcp_time}", --local-timezone, UTC]}}
      # By default nothing listens there (the discard port); test_mcp_over_http starts a server.
      - {{name: search, transport: http, port: {search_port}}}
    # By default nothing listens there (the discard port): a cort step gets PA741 (unreachable).
    model: {{name: tiny, endpoint: "{model_endpoint}", temperature: 0, seed: 7, maxTokens: 16}}
  researcher: {{}}
consensus:
  electionTimeout: {{minMs: 300, maxMs: 600}}
  heartbeatMs: 100
memory:
  kv:
    blockSize: 16
    bytesPerToken: 32Ki
    capacity:
      blocks: 256
manifests:
  triage:
    core: coder
    inputs: {{source: file, tests: file}}
    outputs:
      failure: {{type: trace, from: steps.reproduce}}
      diagnosis: {{type: report, from: steps.analyse}}
      outline: {{type: json, from: steps.outline}}
    steps:
      - id: reproduce
        kind: sandbox
        command: [python3, -m, unittest, -v, test_calc]
        timeout: 1m
        inputs: {{calc.py: inputs.source, test_calc.py: inputs.tests}}
      - id: analyse
        kind: analyze-trace
        inputs: {{trace: steps.reproduce}}
      - id: outline
        kind: delegate
        core: researcher
        manifest: outline
        inputs: {{source: inputs.source}}
  outline:
    core: researcher
    inputs: {{source: file}}
    outputs:
      functions: {{type: trace, from: steps.list}}
    steps:
      - id: list
        kind: sandbox
        command: [grep, -n, "^def ", source.py]
        timeout: 30s
        inputs: {{source.py: inputs.source}}
  slow:
    core: coder
    inputs: {{marker: string}}
    outputs:
      done: {{type: trace, from: steps.second}}
    steps:
      - id: first
        kind: sandbox
        command: [sh, -c, "sleep 4; echo first $MARKER"]
        timeout: 1m
        inputs: {{marker: inputs.marker}}
      - id: second
        kind: sandbox
        after: [first]
        command: [sh, -c, "echo second"]
  hang:
    core: coder
    inputs: {{marker: string}}
    steps:
      - id: wait
        kind: sandbox
        command: [sh, -c, "exec sleep $MARKER"]
        inputs: {{marker: inputs.marker}}
  overrun:
    core: coder
    steps:
      - id: wait
        kind: sandbox
        command: [sleep, "30"]
        timeout: 1s
  flood:
    core: coder
    outputs:
      out: {{type: trace, from: steps.talk}}
    steps:
      - id: talk
        kind: sandbox
        command: [sh, -c, "yes pyagent | head -c 100000"]
  fill:
    core: coder
    outputs:
      out: {{type: trace, from: steps.write}}
    steps:
      - id: write
        kind: sandbox
        command: [sh, -c, "head -c 3000000 /dev/zero > big"]
  imaged:
    core: coder
    outputs:
      out: {{type: trace, from: steps.look}}
    steps:
      - id: look
        kind: sandbox
        image: example.org/busybox:1
        command: [sh, -c, "cat /etc/marker; test -e /etc/debian_version && echo HOST-ROOT; ls /"]
  unimaged:
    core: coder
    steps:
      - id: look
        kind: sandbox
        image: example.org/absent:1
        command: ["true"]
  clock:
    core: coder
    inputs: {{zone: string}}
    outputs:
      now: {{type: json, from: steps.ask}}
      tokyo: {{type: json, from: steps.convert}}
    steps:
      - id: ask
        kind: mcp
        tool: time.get_current_time
        inputs: {{timezone: inputs.zone}}
      - id: convert
        kind: mcp
        tool: time.convert_time
        arguments: {{source_timezone: UTC, time: "12:00", target_timezone: Asia/Tokyo}}
  lookup:
    core: coder
    inputs: {{query: string}}
    outputs:
      found: {{type: json, from: steps.find}}
    steps:
      - id: find
        kind: mcp
        tool: search.lookup
        arguments: {{limit: 3}}
        inputs: {{query: inputs.query}}
  badclock:
    core: coder
    steps:
      - id: ask
        kind: mcp
        tool: time.get_current_time
        arguments: {{timezone: Not/AZone}}
  think:
    core: coder
    inputs: {{n: int}}
    outputs:
      thought: {{type: report, from: steps.reason}}
    steps:
      - id: run
        kind: sandbox
        command: ["true"]
      - id: reason
        kind: cort
        after: [run]
        rounds: 2
        alternatives: 2
        prompt: How many legs do three birds have?
        inputs: {{n: inputs.n}}
environments:
  dev: {{}}
"""


MCP_TIME = ROOT / ".tools" / "mcp-venv" / "bin" / "mcp-server-time"


UNREACHABLE_MODEL = "http://127.0.0.1:9/v1"
LLAMA_PYTHON = ROOT / ".tools" / "llama-venv" / "bin" / "python"
TINY_GGUF = ROOT / "native" / "crates" / "pyagent-model" / "tests" / "tiny_gguf.py"


def spec_text(name: str, model_endpoint: str = UNREACHABLE_MODEL, search_port: int = 9) -> str:
    """The tasks spec for a swarm named `name` (other test modules run it too)."""
    return SPEC.format(name=name, mcp_time=MCP_TIME, model_endpoint=model_endpoint, search_port=search_port)


def _stack(tmp: Path, prefix: str, model_endpoint: str = UNREACHABLE_MODEL, search_port: int = 9) -> LocalStack:
    name = harness.unique_name(prefix, 3)
    return harness.compile_spec(tmp, name, spec_text(name, model_endpoint, search_port))


@pytest.fixture
def swarm(tmp_path: Path, daemon: Path) -> Iterator[harness.Cluster]:
    stack = _stack(tmp_path, "tasks")
    with harness.running(stack, daemon) as cluster:
        yield cluster


def _json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in done.stderr, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _task(cluster: harness.Cluster, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = _json(harness.pyagent("task", str(cluster.stack.folder), task_id, "--format", "json"))[
        "task"
    ]
    return task


def _wait_state(cluster: harness.Cluster, task_id: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = _task(cluster, task_id)
        if task["state"] in states:
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task['state']}: {task}"
        time.sleep(0.3)


def test_a_task_reproduces_a_bug_in_the_sandbox_and_delegates(swarm: harness.Cluster) -> None:
    folder = str(swarm.stack.folder)
    done = harness.pyagent(
        "run", folder, "triage", "--id", "triage-1", "--wait", "--format", "json",
        "--input", f"source=@{BUGGY / 'calc.py'}", "--input", f"tests=@{BUGGY / 'test_calc.py'}",
    )  # fmt: skip
    task = _json(done)["task"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert task["state"] == "succeeded" and [s["state"] for s in task["steps"]] == ["succeeded"] * 3
    failure = task["outputs"]["failure"]
    # The bug reproduced: the real test failed inside the sandbox, under full isolation.
    assert failure["exitCode"] == 1, json.dumps(failure)
    assert "FAIL: test_mean" in failure["stderr"] and "ok" in failure["stderr"], failure
    assert failure["isolation"] == "namespaces" and failure["cgroupLimits"], failure
    assert "4:def mean" in json.dumps(task["outputs"]["outline"]), task["outputs"]
    # The trace analysed: unittest's failure, its assertion, the frame in the user's test file.
    diagnosis = task["outputs"]["diagnosis"]
    assert diagnosis["kind"] != "unrecognised", diagnosis
    failure_json = json.dumps(diagnosis)
    assert "AssertionError" in failure_json and "test_calc.py" in failure_json, diagnosis
    # The delegated sub-task was a task of its own, of the other core, child of the first.
    child = _task(swarm, "triage-1.outline")
    assert (child["state"], child["core"], child["parent"]) == ("succeeded", "researcher", "triage-1")
    # /metrics: the task table (the same on every node) and the isolation the spec requires.
    # Followers apply the last report a moment after the leader answered.
    for node in swarm.stack.nodes:
        harness.wait_for(
            lambda node=node: harness.metric_sum(harness.metrics(node), "pyagent_tasks", state="succeeded") == 2, 30
        )
        assert harness.metric_sum(harness.metrics(node), "pyagent_sandbox_isolation", level="namespaces") == 2
    config = json.loads(swarm.stack.nodes[0].config.read_text())
    assert config["work"]["minIsolation"] == "namespaces"
    listed = _json(harness.pyagent("tasks", folder, "--format", "json"))["tasks"]
    assert [t["id"] for t in listed] == ["triage-1", "triage-1.outline"]
    # Resubmitting the same id and inputs is a no-op; other inputs under that id are refused.
    again = harness.pyagent(
        "run", folder, "triage", "--id", "triage-1",
        "--input", f"source=@{BUGGY / 'calc.py'}", "--input", f"tests=@{BUGGY / 'test_calc.py'}",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    other = harness.pyagent("run", folder, "triage", "--id", "triage-1", "--input", "source=x", "--input", "tests=y")
    assert other.returncode == 1 and "PA706" in other.stderr, other.stderr


def test_bad_input_gets_a_coded_error_before_anything_is_sent(tmp_path: Path) -> None:
    """On a stack that was never started: the inputs are checked first, the swarm asked last."""
    folder = str(_stack(tmp_path, "tasksbad").folder)
    cases = {
        ("nope",): "PA702",
        ("think", "--input", "n=three"): "PA704",
        ("think",): "PA703",
        ("think", "--input", "n=1", "--input", "m=2"): "PA703",
        ("think", "--input", "n"): "PA703",
        ("triage", "--input", "source=@/no/such/file", "--input", "tests=x"): "PA704",
        ("think", "--input", "n=1"): "PA705",
    }
    for args, code in cases.items():
        done = harness.pyagent("run", folder, *args, "--timeout", "2")
        assert code in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert done.returncode in (1, 2), (args, done.returncode)


def test_a_cort_step_with_its_model_server_down_fails_with_a_code(swarm: harness.Cluster) -> None:
    done = harness.pyagent("run", str(swarm.stack.folder), "think", "--input", "n=3", "--wait", "--format", "json")
    task = _json(done)["task"]
    assert done.returncode == 1
    assert task["state"] == "failed" and task["errorCode"] == "PA741", task
    assert [s["state"] for s in task["steps"]] == ["succeeded", "failed"]
    assert "127.0.0.1:9" in task["steps"][1]["error"], task


@contextlib.contextmanager
def _llama_server(tmp: Path, n_ctx: int = 2048) -> Iterator[str]:
    """llama.cpp's server (llama-cpp-python, built by .ci/install-llama.sh) on a port the kernel
    picks, serving a tiny random-weights model the test writes itself; yields its /v1 base URL."""
    assert LLAMA_PYTHON.is_file(), "run .ci/install-llama.sh (make setup does)"
    model = tmp / "tiny.gguf"
    made = subprocess.run([str(LLAMA_PYTHON), str(TINY_GGUF), str(model)], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    server = subprocess.Popen(
        [str(LLAMA_PYTHON), "-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", "0", "--model", str(model),
         "--chat_format", "chatml", "--n_ctx", str(n_ctx), "--n_threads", "1", "--verbose", "false"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ports: queue.Queue[str] = queue.Queue()

    def drain() -> None:  # keeps reading, so the server never blocks on a full pipe
        assert server.stderr is not None
        for line in server.stderr:
            if "Uvicorn running on http://127.0.0.1:" in line:
                ports.put(line.split("http://127.0.0.1:")[1].split()[0])

    threading.Thread(target=drain, daemon=True).start()
    try:
        port = ports.get(timeout=180)
        endpoint = f"http://127.0.0.1:{port}/v1"
        harness.wait_for(lambda: _answers(f"{endpoint}/models"), timeout=120)
        yield endpoint
    finally:
        server.kill()
        server.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_a_cort_step_reasons_with_a_real_model_server(tmp_path: Path, daemon: Path) -> None:
    """CoRT against llama.cpp's server: every round's alternatives and judgement recorded in the
    step's report, sampling settings passed through. Random weights answer gibberish: this proves
    the protocol and the record, not the reasoning."""
    with _llama_server(tmp_path) as endpoint:
        stack = _stack(tmp_path, "cort", endpoint)
        cluster = harness.up_local(stack, daemon)
        try:
            done = harness.pyagent("run", str(stack.folder), "think", "--input", "n=3", "--wait", "--format", "json")
            task = _json(done)["task"]
            assert done.returncode == 0 and task["state"] == "succeeded", json.dumps(task["steps"])
            record = task["outputs"]["thought"]
            # An initial answer, then per round 2 alternatives and a judgement.
            assert record["requests"] == 1 + 2 * (2 + 1), record
            assert [r["round"] for r in record["rounds"]] == [1, 2]
            assert all(r["choice"]["how"] in ("parsed", "fallback") for r in record["rounds"])
            assert record["usage"]["totalTokens"] > 0 and record["sampling"]["seed"] == 7, record["sampling"]
            assert "How many legs" in record["prompt"] and "## n" in record["prompt"], record["prompt"]
        finally:
            cluster.close()
            harness.down_local(stack)


def _busybox_image(layout: Path, reference: str) -> None:
    """An OCI image with busybox (static) and a marker file, made by umoci as an operator's
    tools would (`skopeo copy` writes the same layout), into the stack's image layout."""
    bundle = layout.parent / "bundle"

    def umoci(*args: str) -> None:
        done = subprocess.run(["umoci", *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"umoci {args}: {done.stderr} (.ci/install-sandbox.sh installs umoci)"

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:{reference}")
    umoci("unpack", "--image", f"{layout}:{reference}", str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(exist_ok=True)
    (rootfs / "etc").mkdir(exist_ok=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "cat", "ls", "test"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "marker").write_text("inside the image\n")
    umoci("repack", "--image", f"{layout}:{reference}", str(bundle))
    shutil.rmtree(bundle)


def test_a_sandbox_step_runs_in_its_image(swarm: harness.Cluster) -> None:
    folder = str(swarm.stack.folder)
    # The stack's layout, `images/` beside its node configs: compile never writes there.
    _busybox_image(swarm.stack.folder / "images", "example.org/busybox:1")
    done = harness.pyagent("run", folder, "imaged", "--wait", "--format", "json")
    task = _json(done)["task"]
    assert done.returncode == 0 and task["state"] == "succeeded", json.dumps(task["steps"])
    out = task["outputs"]["out"]
    assert "inside the image" in out["stdout"] and "HOST-ROOT" not in out["stdout"], out
    assert out["isolation"] == "namespaces", out
    missing = harness.pyagent("run", folder, "unimaged", "--wait", "--format", "json")
    task = _json(missing)["task"]
    assert missing.returncode == 1 and task["errorCode"] == "PA728", task
    # The error says what the layout holds.
    assert "example.org/busybox:1" in task["steps"][0]["error"], task


def test_mcp_steps_call_a_real_server_in_the_tasks_sandbox(swarm: harness.Cluster) -> None:
    """mcp-server-time from PyPI (.ci/install-mcp-servers.sh), started by the node in the task's
    sandbox, kept for the task's second call, and gone when the task ends."""
    assert MCP_TIME.is_file(), "run .ci/install-mcp-servers.sh (make setup does)"
    folder = str(swarm.stack.folder)
    done = harness.pyagent("run", folder, "clock", "--input", "zone=Europe/Paris", "--wait", "--format", "json")
    task = _json(done)["task"]
    assert done.returncode == 0 and task["state"] == "succeeded", json.dumps(task["steps"])
    now, tokyo = task["outputs"]["now"], task["outputs"]["tokyo"]
    assert now["timezone"] == "Europe/Paris" and now["datetime"][-6:] in ("+01:00", "+02:00"), now
    assert tokyo["target"]["datetime"].endswith("T21:00:00+09:00"), tokyo
    harness.wait_for(lambda: not _processes_with(str(MCP_TIME)), timeout=30)
    bad = harness.pyagent("run", folder, "badclock", "--wait", "--format", "json")
    task = _json(bad)["task"]
    assert bad.returncode == 1 and task["errorCode"] == "PA735", task
    assert "time" in task["steps"][0]["error"] and "get_current_time" in task["steps"][0]["error"], task


HTTP_SERVER = ROOT / "tests" / "data" / "tools" / "http_server.py"


def test_mcp_over_http_calls_a_real_server_at_its_port(tmp_path: Path, daemon: Path) -> None:
    """A core's `transport: http` server (the official Python SDK's MCPServer under uvicorn, run
    beside the nodes): the node that runs the task reaches it at http://127.0.0.1:<port>/mcp."""
    python = MCP_TIME.parent / "python"
    server = subprocess.Popen([str(python), str(HTTP_SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("port "), f"the test server did not start: {line!r}"
        stack = _stack(tmp_path, "mcphttp", search_port=int(line.split()[1]))
        with harness.running(stack, daemon) as cluster:
            folder = str(cluster.stack.folder)
            done = harness.pyagent("run", folder, "lookup", "--input", "query=raft", "--wait", "--format", "json")
            task = _json(done)["task"]
            assert done.returncode == 0 and task["state"] == "succeeded", json.dumps(task["steps"])
            assert "3 results for raft" in json.dumps(task["outputs"]["found"]), task["outputs"]
    finally:
        server.kill()
        server.wait(timeout=30)


def _processes_with(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def _sleepers(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def test_cancel_kills_the_sandboxed_command(swarm: harness.Cluster) -> None:
    folder = str(swarm.stack.folder)
    marker = f"{600 + time.time_ns() % 1000}.{time.time_ns() % 997}"
    done = harness.pyagent("run", folder, "hang", "--id", "hang-1", "--input", f"marker={marker}")
    assert done.returncode == 0, done.stderr
    _wait_state(swarm, "hang-1", {"running"})
    harness.wait_for(lambda: bool(_sleepers(marker)), timeout=60)
    cancel = harness.pyagent("cancel", folder, "hang-1", "--reason", "test")
    assert cancel.returncode == 0, cancel.stderr
    task = _task(swarm, "hang-1")
    assert (task["state"], task["errorCode"], task["reason"]) == ("cancelled", "PA723", "test")
    harness.wait_for(lambda: not _sleepers(marker), timeout=30)
    assert _kills(swarm, task["owner"], "cancelled") == 1


def _kills(cluster: harness.Cluster, node_id: int, reason: str) -> float:
    (node,) = [n for n in cluster.stack.nodes if n.id == node_id]
    return harness.metric_sum(harness.metrics(node), "pyagent_sandbox_kills_total", reason=reason)


def test_a_command_past_its_timeout_is_killed_and_counted(swarm: harness.Cluster) -> None:
    done = harness.pyagent("run", str(swarm.stack.folder), "overrun", "--id", "overrun-1", "--wait")
    assert done.returncode == 1, done.stdout + done.stderr
    task = _task(swarm, "overrun-1")
    assert (task["state"], task["errorCode"]) == ("failed", "PA720"), task
    assert "wall-clock limit of 1000 ms" in task["steps"][0]["error"], task
    assert _kills(swarm, task["owner"], "wall_clock") == 1
    assert _kills(swarm, task["owner"], "cancelled") == 0


def test_a_node_killed_mid_task_loses_it_and_no_step_is_committed_twice(swarm: harness.Cluster) -> None:
    folder = str(swarm.stack.folder)
    done = harness.pyagent("run", folder, "slow", "--id", "slow-1", "--input", "marker=m1")
    assert done.returncode == 0, done.stderr
    running = _wait_state(swarm, "slow-1", {"running"})
    owner = running["owner"]
    swarm.kill(owner, signal.SIGKILL)
    task = _wait_state(swarm, "slow-1", {"succeeded", "failed"}, timeout=120)
    assert task["state"] == "succeeded", task
    assert task["placements"] >= 2 and task["owner"] != owner, task
    assert task["outputs"]["done"]["stdout"] == "second\n"
    # The first step ran on the new owner (the dead one never reported it): its output is one run's.
    first = task["steps"][0]
    assert first["state"] == "succeeded" and first["output"]["stdout"] == "first m1\n", first


def test_a_large_output_stays_on_the_owners_disk_with_its_hash(swarm: harness.Cluster) -> None:
    """The trace (Raft-committed, on every node) keeps 16 KiB of a stream; the rest is on the
    owner's disk, named in the trace with the whole capture's SHA-256."""
    done = harness.pyagent("run", str(swarm.stack.folder), "flood", "--wait", "--format", "json")
    assert done.returncode == 0, done.stderr
    out = _json(done)["task"]["outputs"]["out"]
    stream = out["streams"]["stdout"]
    assert len(out["stdout"]) == 16 * 1024 and out["stdoutTruncated"], out
    assert stream["bytes"] == 100_000 and stream["inlineTruncated"] and not stream["captureTruncated"]
    kept = Path(stream["file"]).read_bytes()
    assert kept == b"pyagent\n" * 12_500
    assert stream["sha256"] == hashlib.sha256(kept).hexdigest()


def test_a_command_that_fills_its_workspace_stops_at_the_quota(swarm: harness.Cluster) -> None:
    done = harness.pyagent("run", str(swarm.stack.folder), "fill", "--wait", "--format", "json")
    assert done.returncode == 0, done.stderr
    out = _json(done)["task"]["outputs"]["out"]
    assert out["workspaceQuotaBytes"] == 2**20, out
    assert out["exitCode"] != 0 and "No space left on device" in out["stderr"], out
