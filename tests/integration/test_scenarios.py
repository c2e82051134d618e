"""`pyagent scenario run` end to end: a spec with a passing and a failing scenario, run by the real
CLI on a real headless local swarm (the daemon's `verify` steps replay the stubs and check
`expect`), its exit codes and its JUnit, SARIF and JSON reports, and no node left running, also
after Ctrl-C in the middle of a scenario."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import grpc

from pyagent_compile.plan.local import PORT_OFFSETS, PORTS_PER_NODE, port_slot
from pyagent_compile.runtime.local import processes
from pyagent_compile.runtime.nodeapi import node_pb2 as pb
from pyagent_compile.runtime.nodeapi.client import NodeClient
from tests.integration import harness

ROOT = Path(__file__).resolve().parents[2]

SPEC = """\
apiVersion: pyagent.dev/v1alpha1
kind: Swarm
metadata:
  name: {name}
image:
  build: native
nodes:
  agents:
    replicas: 1
    roles: [voter, worker]
    hardware: {{cpu: 1, memory: 1Gi}}
    cores: [greeter]
cores:
  greeter:
    resources: {{cpu: 500m, memory: 256Mi}}
    # Never started: the scenarios stub its only tool (the command does not even exist).
    tools:
      - {{name: time, command: [not-installed-mcp-server-time]}}
consensus:
  electionTimeout: {{minMs: 300, maxMs: 600}}
  heartbeatMs: 100
memory:
  kv: {{blockSize: 16, bytesPerToken: 32Ki, capacity: {{blocks: 256}}}}
manifests:
  greet:
    core: greeter
    inputs: {{name: string}}
    outputs:
      greeting: {{type: trace, from: steps.say}}
      now: {{type: json, from: steps.now}}
    steps:
      - id: say
        kind: sandbox
        command: [sh, -c, 'printf "hello %s\\n" "$NAME"']
        timeout: 1m
        inputs: {{name: inputs.name}}
      - id: now
        kind: mcp
        tool: time.get_current_time
        arguments: {{timezone: UTC}}
  greet-checked:
    core: greeter
    outputs:
      verdict: {{type: verdict, from: steps.verify}}
    steps:
      - {{id: verify, kind: verify, scenario: scenarios/hello.yaml}}
"""

# Named by the verify step of greet-checked.
PASSING = """\
apiVersion: pyagent.dev/scenario/v1alpha1
kind: Scenario
metadata: {name: hello}
manifest: greet
inputs: {name: "@name.txt"}
stubs:
  tools:
    - tool: time.get_current_time
      result: {timezone: UTC, datetime: "2026-12-05T04:00:00+00:00", is_dst: false}
expect:
  state: succeeded
  steps: {say: succeeded, now: succeeded}
  outputs:
    - {output: greeting, path: /exitCode, equals: 0}
    - {output: greeting, path: /stdout, contains: hello scenario}
    - {output: now, path: /timezone, equals: UTC}
"""

# Found in scenarios/ beside the spec; its expectation is wrong on purpose.
FAILING = """\
apiVersion: pyagent.dev/scenario/v1alpha1
kind: Scenario
metadata:
  name: wrong-exit
manifest: greet
inputs: {name: scenario}
stubs:
  tools:
    - {tool: time.get_current_time, result: {timezone: UTC}}
expect:
  outputs:
    - {output: greeting, path: /exitCode, equals: 1}
"""


def _spec(tmp: Path, name: str, failing: bool) -> Path:
    (tmp / "scenarios").mkdir(parents=True)
    (tmp / "scenarios" / "hello.yaml").write_text(PASSING, encoding="utf-8")
    (tmp / "scenarios" / "name.txt").write_text("scenario", encoding="utf-8")
    if failing:
        (tmp / "scenarios" / "wrong-exit.yaml").write_text(FAILING, encoding="utf-8")
    spec = tmp / "swarm.yaml"
    spec.write_text(SPEC.format(name=name), encoding="utf-8")
    return spec


def _scenario_run(spec: Path, daemon: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyagent_compile", "scenario", "run", str(spec), "--timeout", "120", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYAGENT_NODE_BIN": str(daemon)},
    )


def _swarm_gone(name: str, nodes: int) -> bool:
    slot = port_slot(name)
    return all(processes.port_free(p) for p in range(slot, slot + PORTS_PER_NODE * nodes))


def test_a_failing_scenario_fails_the_run_with_junit_and_sarif(tmp_path: Path, daemon: Path) -> None:
    name = harness.unique_name("scen", 1)
    try:
        spec = _spec(tmp_path, name, failing=True)
        sarif = tmp_path / "scenarios.sarif"
        done = _scenario_run(spec, daemon, "--format", "junit", "--output", f"sarif={sarif}")
        assert done.returncode == 1, done.stdout + done.stderr
        assert _swarm_gone(name, 1), "the swarm was left running"

        suite = ET.fromstring(done.stdout).find("testsuite")
        assert suite is not None
        assert (suite.get("tests"), suite.get("failures")) == ("2", "1"), done.stdout
        cases = {case.get("name", ""): case for case in suite.iter("testcase")}
        passed = [n for n, c in cases.items() if c.find("failure") is None]
        failed = [c.find("failure") for c in cases.values() if c.find("failure") is not None]
        assert passed == [f"scenario hello (scenarios/hello.yaml) [{spec.as_posix()}]"], passed
        assert len(failed) == 1 and failed[0] is not None and failed[0].get("type") == "PA650"
        assert "wrong-exit" in (failed[0].get("message") or "")

        results = json.loads(sarif.read_text(encoding="utf-8"))["runs"][0]["results"]
        assert [r["ruleId"] for r in results] == ["PA650"]
        place = results[0]["locations"][0]["physicalLocation"]
        assert place["artifactLocation"]["uri"].endswith("scenarios/wrong-exit.yaml")
        assert place["region"]["startLine"] == 4  # `name: wrong-exit`
    finally:
        harness.release_name(name)


def test_all_scenarios_passing_exit_0_with_their_verdicts(tmp_path: Path, daemon: Path) -> None:
    name = harness.unique_name("scen", 1)
    try:
        spec = _spec(tmp_path, name, failing=False)
        done = _scenario_run(spec, daemon, "--format", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert _swarm_gone(name, 1), "the swarm was left running"
        document = json.loads(done.stdout)
        assert document["summary"] == {"errors": 0, "warnings": 0}
        [verdict] = document["scenarios"]
        assert verdict["scenario"] == "hello" and verdict["passed"] is True and verdict["state"] == "succeeded"
        assert verdict["scenarioTask"] == f"{verdict['task']}.verify"
        assert verdict["scenarioState"] == "succeeded"
        assert len(verdict["checks"]) >= 3 and all(c["passed"] for c in verdict["checks"])
    finally:
        harness.release_name(name)


def test_a_scenario_that_does_not_fit_the_spec_stops_before_any_swarm(tmp_path: Path, daemon: Path) -> None:
    name = harness.unique_name("scen", 1)
    try:
        spec = _spec(tmp_path, name, failing=False)
        shutil.copy(tmp_path / "scenarios" / "hello.yaml", tmp_path / "scenarios" / "typo.yaml")
        typo = tmp_path / "scenarios" / "typo.yaml"
        typo.write_text(typo.read_text().replace("time.get_current_time", "time.get_curent_time"), encoding="utf-8")
        done = _scenario_run(spec, daemon)
        assert done.returncode == 1, done.stderr
        assert "error[PA343]" in done.stderr and "warning[PA348]" in done.stderr, done.stderr
        assert "PASS" not in done.stdout
    finally:
        harness.release_name(name)


NAPPING = """\
apiVersion: pyagent.dev/scenario/v1alpha1
kind: Scenario
metadata: {name: long-nap}
manifest: nap
stubs:
  tools: []
expect: {state: succeeded}
"""


def _running_scenario_step(address: str) -> bool:
    """True once the swarm runs a step of the scenario's sub-task (the verify task's child)."""
    client = NodeClient(address)
    try:
        tasks = client.stub.ListTasks(pb.ListTasksRequest(stale=True), timeout=2.0).tasks
    except grpc.RpcError:
        return False
    finally:
        client.close()
    return any(t.parent and any(s.state == "running" for s in t.steps) for t in tasks)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_takes_the_swarm_down(tmp_path: Path, daemon: Path) -> None:
    name = harness.unique_name("scen", 1)
    try:
        spec = _spec(tmp_path, name, failing=False)
        (tmp_path / "scenarios" / "hello.yaml").unlink()
        (tmp_path / "scenarios" / "long-nap.yaml").write_text(NAPPING, encoding="utf-8")
        nap = (
            "  nap:\n    core: greeter\n    steps:\n"
            "      - {id: sleep, kind: sandbox, command: [sleep, '300'], timeout: 10m}\n"
        )
        text = spec.read_text().replace("  greet-checked:", nap + "  greet-checked:")
        spec.write_text(text.replace("scenario: scenarios/hello.yaml", "scenario: scenarios/long-nap.yaml"))
        process = subprocess.Popen(
            [sys.executable, "-m", "pyagent_compile", "scenario", "run", str(spec), "--timeout", "600"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYAGENT_NODE_BIN": str(daemon)},
            # A shell without job control starts background jobs with SIGINT ignored, and a
            # Python started so never raises KeyboardInterrupt: give the child Ctrl-C back.
            preexec_fn=_default_sigint,
        )
        grpc_port = port_slot(name) + PORT_OFFSETS["grpc"]
        try:
            harness.wait_for(
                lambda: process.poll() is not None or _running_scenario_step(f"127.0.0.1:{grpc_port}"), timeout=180
            )
            assert process.poll() is None, (
                "the scenario ended before its sandbox step ran:\n" + process.communicate()[1]
            )
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 130 and "interrupted" in err, err
        assert _swarm_gone(name, 1), "Ctrl-C left the swarm running"
    finally:
        harness.release_name(name)
