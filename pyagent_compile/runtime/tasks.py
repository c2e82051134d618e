"""Tasks on a running local swarm: typed inputs, submission through the leader, views.

`pyagent run/tasks/task/cancel` (commands/tasks.py) are thin over this. A task carries its
manifest, read from the stack's `work.json` (contracts/work.py), and its inputs, checked here
against the manifest's declared types before anything is sent (the daemon checks them again).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from pyagent_compile.contracts.work import Manifest, WorkFile, read_work_file
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.runtime.local.stack import LocalStack
from pyagent_compile.runtime.nodeapi import node_pb2 as pb
from pyagent_compile.runtime.nodeapi.client import NodeClient, NotLeader, Signer
from pyagent_compile.suggest import did_you_mean

FINAL_STATES = ("succeeded", "failed", "cancelled")
WORK_FILE = "work.json"
REPLAY_RETRIES = 5


class TaskError(Exception):
    """A problem to report as one diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def load_work(stack: LocalStack) -> WorkFile:
    path = stack.folder / WORK_FILE
    try:
        return read_work_file(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskError(
            Diagnostic("PA701", f"{stack.folder} has no {WORK_FILE}", help="run `pyagent compile` to render it")
        ) from None
    except (OSError, ValueError) as exc:
        raise TaskError(Diagnostic("PA701", f"cannot read {path}: {exc}", help="run `pyagent compile`")) from None


def find_manifest(work: WorkFile, name: str) -> Manifest:
    if name in work.manifests:
        return work.manifests[name]
    known = sorted(work.manifests)
    hint = did_you_mean(name, known) or f"the swarm's manifests: {', '.join(known) or '(none)'}"
    raise TaskError(Diagnostic("PA702", f"swarm {work.swarm} has no manifest {name!r}", help=hint))


def _typed(name: str, type_: str, raw: str) -> Any:
    """The value of `--input name=raw` for a declared type; `@path` reads a file's text."""
    if raw.startswith("@") and type_ in ("string", "diff", "file", "report", "trace"):
        try:
            return Path(raw[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {raw[1:]}: {exc.strerror}") from None
    if type_ == "int":
        try:
            return int(raw, 10)
        except ValueError:
            raise ValueError(f"{raw!r} is not an int") from None
    if type_ == "bool":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"{raw!r} is not a bool (true or false)")
    if type_ in ("json", "verdict"):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{raw!r} is not JSON: {exc}") from None
    return raw


def parse_inputs(manifest: Manifest, pairs: list[str]) -> dict[str, Any]:
    """`name=value` pairs as the manifest's typed inputs: every declared input once, no other."""
    values: dict[str, Any] = {}
    declared = manifest.inputs
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise TaskError(Diagnostic("PA703", f"--input {pair!r} is not name=value", help="e.g. --input command=ls"))
        if name not in declared:
            hint = (
                did_you_mean(name, sorted(declared))
                or f"{manifest.name} takes: {', '.join(sorted(declared)) or '(no inputs)'}"
            )
            raise TaskError(Diagnostic("PA703", f"manifest {manifest.name} has no input {name!r}", help=hint))
        if name in values:
            raise TaskError(Diagnostic("PA703", f"input {name!r} is given twice", help="give each input once"))
        try:
            values[name] = _typed(name, declared[name], raw)
        except ValueError as exc:
            raise TaskError(
                Diagnostic(
                    "PA704", f"input {name!r} must be a {declared[name]}: {exc}", help=_type_hint(declared[name])
                )
            ) from None
    missing = sorted(set(declared) - set(values))
    if missing:
        wanted = " ".join(f"--input {m}=<{declared[m]}>" for m in missing)
        raise TaskError(Diagnostic("PA703", f"missing input(s) of {manifest.name}: {', '.join(missing)}", help=wanted))
    return values


def _type_hint(type_: str) -> str:
    return {
        "int": "a whole number, e.g. --input n=3",
        "bool": "true or false",
        "json": "a JSON value, e.g. --input x='{\"a\": 1}'",
        "verdict": "a JSON value",
    }.get(type_, "text, or @path to read a file")


def new_task_id(manifest: str) -> str:
    """Sortable by submission time, unique across clients."""
    return f"{manifest}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


@dataclass
class SwarmClient:
    """Signed commands and reads through whichever node leads, following redirects."""

    stack: LocalStack
    timeout: float = 30.0

    def __post_init__(self) -> None:
        signer_node = next((n for n in self.stack.nodes if n.key_file.exists()), None)
        if signer_node is None:
            raise TaskError(
                Diagnostic(
                    "PA705",
                    f"no node of {self.stack.folder} has a key: the swarm was never started",
                    help=f"pyagent up --local {self.stack.folder}",
                )
            )
        self.signer = Signer.from_file(self.stack.swarm, signer_node.id, signer_node.key_file)
        self._addresses = [n.grpc for n in self.stack.nodes]
        self._clients: dict[str, NodeClient] = {}
        # The dashboard's request threads share one client.
        self._clients_lock = threading.Lock()

    def close(self) -> None:
        with self._clients_lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()

    def _client(self, address: str) -> NodeClient:
        with self._clients_lock:
            if address not in self._clients:
                self._clients[address] = NodeClient(address)
            return self._clients[address]

    def _unreachable(self, last: str) -> TaskError:
        return TaskError(
            Diagnostic(
                "PA705",
                f"no node of swarm {self.stack.swarm} answered as leader within {self.timeout:.0f} s ({last})",
                help=f"pyagent status {self.stack.folder}",
            )
        )

    def _call(self, call: Any) -> Any:
        """`call(client)` on the leader: tries each node, follows NotLeader, retries while
        nodes are down or electing, until the timeout."""
        deadline = time.monotonic() + self.timeout
        order = list(self._addresses)
        last = "no answer"
        while time.monotonic() < deadline:
            address = order[0]
            try:
                return call(self._client(address))
            except NotLeader as redirect:
                last = str(redirect)
                if redirect.leader_grpc:
                    order.remove(redirect.leader_grpc) if redirect.leader_grpc in order else None
                    order.insert(0, redirect.leader_grpc)
                    continue
            except grpc.RpcError as error:
                code: Any = error
                last = f"{address}: {code.code().name} {code.details()}"
            order.append(order.pop(0))
            time.sleep(0.05)
        raise self._unreachable(last)

    def submit(self, command: pb.Command) -> pb.CommandResult:
        """Signs and submits through the leader. A refusal as unauthenticated is a sequence
        number the node signing with the same key used first: signed again, a few times."""

        def once(client: NodeClient) -> pb.CommandResult:
            return client.submit(self.signer.sign(command), timeout=10.0)

        for _ in range(REPLAY_RETRIES):
            result: pb.CommandResult = self._call(once)
            if result.refusal != "unauthenticated":
                return result
        return result

    def describe(self, task_id: str) -> pb.TaskView:
        view: pb.TaskView = self._call(lambda c: c.stub.DescribeTask(pb.DescribeTaskRequest(id=task_id), timeout=5.0))
        return view

    def list(self) -> list[pb.TaskView]:
        response: pb.ListTasksResponse = self._call(lambda c: c.stub.ListTasks(pb.ListTasksRequest(), timeout=5.0))
        return list(response.tasks)

    def watch(self, task_id: str) -> Iterator[pb.TaskView]:
        """Views of the task as it changes, until it ends; re-attaches if the node goes away."""
        last = 0
        while True:
            try:
                stream = self._call(lambda c: c.stub.WatchTask(pb.DescribeTaskRequest(id=task_id)))
                for view in stream:
                    if view.revision != last or not view.found:
                        last = view.revision
                        yield view
                    if not view.found or view.state in FINAL_STATES:
                        return
            except grpc.RpcError:
                time.sleep(0.2)


def submit_command(
    task_id: str, manifest: Manifest, inputs: dict[str, Any], work: WorkFile, traceparent: str = ""
) -> pb.Command:
    """The signed command's body. `traceparent` (W3C) puts the task's trace under the caller's
    span; empty: the task starts a trace of its own."""
    core = work.cores.get(manifest.core)
    return pb.Command(
        submit_task=pb.SubmitTask(
            id=task_id,
            manifest=manifest.name,
            core=manifest.core,
            manifest_json=json.dumps(manifest.to_json(), sort_keys=True, separators=(",", ":")).encode(),
            inputs_json=json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode(),
            resources=pb.Resources(
                cpu_millis=core.cpu_millis if core else 0,
                memory_bytes=core.memory_bytes if core else 0,
                gpu_memory_bytes=core.gpu_memory_bytes if core else 0,
            ),
            traceparent=traceparent,
        )
    )


def view_to_json(view: pb.TaskView) -> dict[str, Any]:
    def parsed(text: str) -> Any:
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text

    return {
        "id": view.id,
        "manifest": view.manifest,
        "core": view.core,
        "state": view.state,
        "reason": view.reason,
        "errorCode": view.error_code,
        "owner": view.owner,
        "token": [view.token.term, view.token.index],
        "placements": view.placements,
        "parent": view.parent,
        "inputs": parsed(view.inputs_json),
        "outputs": parsed(view.outputs_json),
        "submittedMs": view.submitted_ms,
        "finishedMs": view.finished_ms,
        "trace": {"traceId": view.trace_id, "spanId": view.span_id, "parentSpanId": view.parent_span_id},
        "steps": [
            {
                "id": s.id,
                "kind": s.kind,
                "state": s.state,
                "attempt": s.attempt,
                "output": parsed(s.output_json),
                "errorCode": s.error_code,
                "error": s.error,
                "startedMs": s.started_ms,
                "finishedMs": s.finished_ms,
            }
            for s in view.steps
        ],
    }
