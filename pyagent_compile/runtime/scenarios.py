"""Scenarios on a headless local swarm (`pyagent scenario run`, docs/scenarios.md).

Which scenarios a spec has, the one-step task that verifies one (its manifest is made here, not
taken from the spec: `scenario.<name>`, a single `verify` step naming the scenario's key in
work.json), reading the task's verdict, and a local swarm that is always taken down again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from pyagent_compile.contracts import work as contract
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.runtime.local.stack import LocalStack
from pyagent_compile.runtime.nodeapi import node_pb2 as pb
from pyagent_compile.runtime.tasks import FINAL_STATES, SwarmClient, TaskError, new_task_id, submit_command

SCENARIOS_DIR = "scenarios"
DISCOVERED_SUFFIXES = (".yaml", ".yml")
VERIFY_STEP = "verify"
VERDICT_OUTPUT = "verdict"


def discover(spec_dir: Path, referenced: list[str]) -> list[str]:
    """The scenario files beside the spec that no `verify` step names: `scenarios/*.yaml` (and
    .yml), as paths relative to the spec's folder, sorted. A file a verify step names (however it
    writes the path) is left to that step's key."""
    folder = spec_dir / SCENARIOS_DIR
    if not folder.is_dir():
        return []
    named = {(spec_dir / key).resolve() for key in referenced}
    found = [
        f"{SCENARIOS_DIR}/{path.name}"
        for path in sorted(folder.iterdir())
        if path.suffix in DISCOVERED_SUFFIXES and path.is_file() and path.resolve() not in named
    ]
    return found


def verify_manifest(work: contract.WorkFile, key: str, timeout_s: float) -> contract.Manifest:
    """The task that runs scenario `key` of work.json: one verify step on the scenario manifest's core."""
    scenario = work.scenarios[key]
    core = work.manifests[scenario.manifest].core
    template = {
        "id": VERIFY_STEP,
        "kind": "verify",
        "after": [],
        "inputs": {},
        "timeoutMs": max(1, int(timeout_s * 1000)),
        "retries": 0,
        "command": None,
        "network": False,
        "image": None,
        "core": None,
        "manifest": None,
        "params": {"scenario": key},
    }
    # Every field of the Step contract is written (the daemon's structs have no defaults): a
    # field added to the contract later is null here unless this function learns it.
    fields = {info.alias or name for name, info in contract.Step.model_fields.items()}
    step = contract.Step.model_validate({name: template.get(name) for name in fields}, strict=False)
    return contract.Manifest.model_validate(
        {
            "name": f"scenario.{scenario.name}",
            "core": core,
            "inputs": {},
            "outputs": {VERDICT_OUTPUT: {"type": "verdict", "from": f"steps.{VERIFY_STEP}"}},
            "steps": [step.to_json()],
        },
        strict=False,
    )


@dataclass(frozen=True)
class Check:
    check: str
    passed: bool
    expected: Any = None
    actual: Any = None


@dataclass
class Outcome:
    """How one scenario went: its verdict, or why there is none."""

    key: str
    name: str
    task: str  # the verify task's id
    state: str = ""  # the verify task's final state ("" if it never ended)
    passed: bool = False
    child: str = ""  # the scenario's own task, `<verify task>.verify`
    child_state: str = ""
    checks: list[Check] = field(default_factory=list)
    error_code: str = ""  # the verify task's code when it failed, or PA652/PA653
    error: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "file": self.key,
            "passed": self.passed,
            "task": self.task,
            "state": self.state,
            "scenarioTask": self.child,
            "scenarioState": self.child_state,
            "checks": [
                {"check": c.check, "passed": c.passed, "expected": c.expected, "actual": c.actual} for c in self.checks
            ],
            "errorCode": self.error_code or None,
            "error": self.error or None,
            "seconds": round(self.seconds, 3),
        }


def _verdict(view: pb.TaskView) -> dict[str, Any] | None:
    """The verdict: the task's output, else (a failed verify step) the step's own output."""
    candidates = [view.outputs_json] + [s.output_json for s in view.steps if s.id == VERIFY_STEP]
    for text in candidates:
        try:
            value = json.loads(text) if text else None
        except ValueError:
            continue
        if isinstance(value, dict) and VERDICT_OUTPUT in value and isinstance(value[VERDICT_OUTPUT], dict):
            value = value[VERDICT_OUTPUT]
        if isinstance(value, dict) and isinstance(value.get("passed"), bool):
            return value
    return None


def outcome_of(key: str, name: str, view: pb.TaskView) -> Outcome:
    """Read a finished verify task (contract: docs/scenarios.md, "The verdict")."""
    outcome = Outcome(key, name, view.id, state=view.state)
    verdict = _verdict(view)
    if verdict is not None:
        outcome.child = str(verdict.get("task") or "")
        outcome.child_state = str(verdict.get("state") or "")
        outcome.checks = [
            Check(str(c.get("check", "")), bool(c.get("passed")), c.get("expected"), c.get("actual"))
            for c in verdict.get("checks") or []
            if isinstance(c, dict)
        ]
        outcome.passed = view.state == "succeeded" and verdict["passed"] is True
    if view.state != "succeeded":
        outcome.error_code = view.error_code or "PA707"
        outcome.error = view.reason or f"the verify task {view.state}"
    elif verdict is None:
        outcome.error_code = "PA653"
        outcome.error = f"the verify task succeeded without a readable `{VERDICT_OUTPUT}` output"
    return outcome


def wait_final(client: SwarmClient, task_id: str, timeout: float) -> pb.TaskView | None:
    """The task's view once it ends, or None after `timeout` seconds. Watches the task's stream
    (re-attaching if its node goes away) rather than polling."""
    deadline = time.monotonic() + timeout
    request = pb.DescribeTaskRequest(id=task_id)
    while (left := deadline - time.monotonic()) > 0:
        try:
            stream = client._call(lambda c: c.stub.WatchTask(request, timeout=left))
            for view in stream:
                if not view.found or view.state in FINAL_STATES:
                    return view if view.found else None
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return None
        except TaskError:
            return None
    return None


def run_scenario(
    client: SwarmClient, work: contract.WorkFile, key: str, timeout: float, grace: float = 60.0
) -> Outcome:
    """Submit the verify task of scenario `key`, wait for it, read its verdict. `grace` is what
    the swarm gets beyond the step's timeout to place the task and report it."""
    name = work.scenarios[key].name
    manifest = verify_manifest(work, key, timeout)
    task_id = new_task_id(f"scenario-{name}")
    started = time.monotonic()
    result = client.submit(submit_command(task_id, manifest, {}, work))
    if not result.applied:
        return Outcome(key, name, task_id, error_code="PA706", error=f"{result.message} ({result.refusal})")
    view = wait_final(client, task_id, timeout + grace)
    if view is None:
        client.submit(pb.Command(cancel_task=pb.CancelTask(id=task_id, reason="pyagent scenario run: timed out")))
        outcome = Outcome(key, name, task_id, error_code="PA652", error=f"no result within {timeout:g} s; cancelled")
    else:
        outcome = outcome_of(key, name, view)
    outcome.seconds = time.monotonic() - started
    return outcome


class SwarmNotStarted(Exception):
    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


@contextmanager
def headless_swarm(
    stack: LocalStack,
    timeout: float,
    progress: Callable[[str], None] = lambda _: None,
    release: Callable[[LocalStack], None] = lambda _: None,
) -> Iterator[LocalStack]:
    """The stack's nodes running, as `pyagent up --local` starts them, and stopped and purged
    (`down --purge`: `release` gives back what the nodes left, then the data is deleted) when
    the block ends, however it ends (an error, Ctrl-C)."""
    from pyagent_compile.runtime.local.daemon import find_daemon
    from pyagent_compile.runtime.local.processes import check_ports, log_tail, prepare, start_node, stop_nodes
    from pyagent_compile.runtime.local.swarm import wait_for_leader

    diags = check_ports(stack, stack.nodes)
    if diags:
        raise SwarmNotStarted(diags)
    daemon, diag = find_daemon(report=progress)
    if daemon is None:
        raise SwarmNotStarted([diag] if diag else [])
    diags = prepare(stack, daemon)
    if diags:
        raise SwarmNotStarted(diags)
    processes = {}
    try:
        for node in stack.nodes:
            progress(f"starting {node.name}")
            processes[node.name] = start_node(stack, node, daemon)

        def dead() -> str | None:
            return next((name for name, p in processes.items() if p.poll() is not None), None)

        leader, _ = wait_for_leader(stack, timeout, progress, dead)
        exited = dead()
        if exited is not None:
            node = stack.node(exited)
            raise SwarmNotStarted(
                [
                    Diagnostic(
                        "PA654", f"node {exited} exited while starting", help=f"{node.log_file}:\n{log_tail(node)}"
                    )
                ]
            )
        if leader is None:
            raise SwarmNotStarted([Diagnostic("PA654", f"no leader elected within {timeout:g} s")])
        yield stack
    finally:
        stop_nodes(stack.nodes, timeout=10.0, report=progress)
        release(stack)
        shutil.rmtree(stack.data_root, ignore_errors=True)


__all__ = [
    "Check",
    "Outcome",
    "SwarmNotStarted",
    "discover",
    "headless_swarm",
    "outcome_of",
    "run_scenario",
    "verify_manifest",
    "wait_final",
]
