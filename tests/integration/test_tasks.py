"""Tasks on a real local swarm: submitted with the CLI, committed by Raft, placed on a worker,
their sandbox steps run in pyagent-sandbox, delegated sub-tasks placed on their own, and a node
killed mid-task replaced without running a committed step twice."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import time
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
    # Nothing listens on the discard port: a cort step that runs gets PA741 (unreachable).
    model: {{name: none, endpoint: "http://127.0.0.1:9/v1"}}
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
    steps:
      - id: run
        kind: sandbox
        command: ["true"]
      - id: reason
        kind: cort
        after: [run]
environments:
  dev: {{}}
"""


MCP_TIME = ROOT / ".tools" / "mcp-venv" / "bin" / "mcp-server-time"


def _stack(tmp: Path, prefix: str) -> LocalStack:
    name = harness.unique_name(prefix, 3)
    return harness.compile_spec(tmp, name, SPEC.format(name=name, mcp_time=MCP_TIME))


@pytest.fixture
def swarm(tmp_path: Path, daemon: Path) -> Iterator[harness.Cluster]:
    stack = _stack(tmp_path, "tasks")
    cluster = harness.up_local(stack, daemon)
    try:
        yield cluster
    finally:
        cluster.close()
        harness.down_local(stack)


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


def test_a_step_kind_not_run_yet_fails_the_task_with_a_code(swarm: harness.Cluster) -> None:
    done = harness.pyagent("run", str(swarm.stack.folder), "think", "--input", "n=3", "--wait", "--format", "json")
    task = _json(done)["task"]
    assert done.returncode == 1
    assert task["state"] == "failed" and task["errorCode"] == "PA721", task
    assert [s["state"] for s in task["steps"]] == ["succeeded", "failed"]
    assert "cort" in task["steps"][1]["error"]


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
