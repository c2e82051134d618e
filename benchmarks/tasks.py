"""pyagent's tasks (3 pyagent-node processes) against Ray's tasks, side by side (issue 17).

    python benchmarks/tasks.py              # both, default sizes, 5 alternating rounds
    python benchmarks/tasks.py --quick      # smaller counts (a smoke run)
    python benchmarks/tasks.py --rounds 9
    python benchmarks/tasks.py --no-ray     # ours only (Ray is not installed)

What is measured, each in rounds that alternate the order of the sides (so a drift in the
machine's speed falls on all alike), with every round's /proc/loadavg recorded:

- submit-to-done latency, 1 client: sign and submit a `SubmitTask` to the leader (a Raft commit),
  then follow the task with the gRPC `WatchTask` stream until it is final; p50 and p99.
- tasks/s with 64 clients: 64 threads, each in a closed loop of that submit-then-wait.
- Ray 2.40.0 beside it: a local `ray.init(num_cpus=2)` cluster and `ray.get(noop.remote())`
  from 1 and from 64 threads (benchmarks/ray_tasks_side.py, in its own process and venv,
  .bench-cache/ray-venv, created with pip on first use: Ray is never in the project's .venv).
  Ray's tasks are not durable; every state change of ours is an fsynced Raft commit.

"No-op" on our side, exactly: two manifests are measured.
- `sandbox-true`: one sandbox step running `true` under bubblewrap. It succeeds. The figure is
  the task machinery plus one sandbox start.
- `no-op`: one `analyze-trace` step over an empty trace (the task's input): it runs in the
  daemon, in microseconds, and succeeds. The task takes the Raft commits of any one-step task
  (submission and placement, the step's `running` report, its `succeeded` report, which ends the
  task): the cost of the machinery itself.

The sandbox step's overhead: the step's own `elapsedMs` (from its trace: pyagent-sandbox's clock
from spawning the helper to the command's exit; ms resolution; cgroup creation and the workspace
come before it) and its committed wall time (the step's `started_ms`..`finished_ms`, stamped by
the leader when the `running` and `succeeded` reports applied: workspace, cgroup, sandbox and
the report's commit), each beside `/bin/true` run bare from this process (os.posix_spawn and
waitpid), in the same rounds. `--crate-level` also runs pyagent-sandbox's own overhead test.

Figures: per round p50, p99 and tasks/s; printed as the median over rounds [min-max]. A JSON
record goes to benchmarks/results/tasks-<utc>.json. Recorded runs: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sidevenv import ensure_venv  # noqa: E402
from pyagent_compile.runtime.local.daemon import find_daemon  # noqa: E402
from pyagent_compile.runtime.local.stack import LocalStack, load_stack  # noqa: E402
from pyagent_compile.runtime.nodeapi import node_pb2 as pb  # noqa: E402
from pyagent_compile.runtime.nodeapi.client import Signer  # noqa: E402
from pyagent_compile.runtime.tasks import FINAL_STATES, load_work, submit_command  # noqa: E402

RAY_VERSION = "2.40.0"
RAY_CPUS = 2
CACHE = ROOT / ".bench-cache"
RAY_VENV = CACHE / "ray-venv"
RESULTS = ROOT / "benchmarks" / "results"
MANY = 64
SPEC = """\
apiVersion: pyagent.dev/v1alpha1
kind: Swarm
metadata:
  name: bench-tasks
nodes:
  agents:
    replicas: 3
    roles: [voter, worker]
    # A declared capacity, not this machine's: 2 task slots per CPU, so 32 gives every node 64
    # slots and 64 clients never wait in the queue for a slot (the steps do next to no work).
    hardware: {cpu: 32, memory: 4Gi}
    cores: [bench]
cores:
  bench: {}
consensus:
  electionTimeout: {minMs: 300, maxMs: 600}
  heartbeatMs: 100
memory:
  kv:
    blockSize: 16
    bytesPerToken: 32Ki
    capacity:
      blocks: 256
manifests:
  sandbox-true:
    core: bench
    steps:
      - id: run
        kind: sandbox
        command: ["true"]
        timeout: 30s
  no-op:
    core: bench
    inputs: {trace: trace}
    steps:
      - id: analyse
        kind: analyze-trace
        inputs: {trace: inputs.trace}
environments:
  dev: {}
"""


# -- measurement ------------------------------------------------------------------------------
@dataclass
class Sample:
    """One round of one workload on one side: every operation's latency, and the wall time."""

    latencies: list[float]
    elapsed: float
    views: list[pb.TaskView] = field(default_factory=list)

    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000

    def per_s(self) -> float:
        return len(self.latencies) / self.elapsed


def measure(op: Callable[[int], pb.TaskView | None], clients: int, total: int) -> Sample:
    """`total` operations by `clients` threads, each in a closed loop."""
    latencies: list[float] = []
    views: list[pb.TaskView] = []
    counter = iter(range(total))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None or failures:
                return
            start = time.perf_counter()
            try:
                view = op(i)
            except BaseException as error:  # reported after the round
                failures.append(error)
                return
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if view is not None:
                    views.append(view)

    # The client's garbage collector is off while measuring (on Ray's side too): a full
    # collection stalls every thread at once.
    gc.collect()
    gc.disable()
    try:
        threads = [threading.Thread(target=worker) for _ in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    if failures:
        raise failures[0]
    return Sample(latencies, elapsed, views)


def load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def shown(values: list[float], digits: int = 1) -> str:
    s = spread(values)
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


# -- pyagent ----------------------------------------------------------------------------------
def pyagent_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyagent_compile", *args], capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )


class Ours:
    """Submit-then-wait against the leader of a running local stack."""

    def __init__(self, stack: LocalStack, run_id: str) -> None:
        status = json.loads(pyagent_cli("status", str(stack.folder), "--format", "json").stdout)
        leader = stack.nodes[status["leader"] - 1]
        # The client signs as a node, as `pyagent run` does; its sequence numbers follow the clock
        # as the daemon's own do, so the two meet only in the same microsecond (retried, counted).
        self.signer = Signer.from_file(stack.swarm, leader.id, leader.key_file)
        self.replays = 0
        # Elections on a loaded machine move the leader: the client follows it, as `pyagent run`
        # does, and the moves are counted and printed.
        self.leader_moves = 0
        self.stack = stack
        self.work = load_work(stack)
        self.run_id = run_id
        self._connect(leader.grpc)
        self._serial = 0
        self._lock = threading.Lock()

    def _connect(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self._submit = self.channel.unary_unary(
            "/pyagent.node.v1.Node/Submit",
            request_serializer=pb.SignedCommand.SerializeToString,
            response_deserializer=pb.CommandResult.FromString,
        )
        self._watch = self.channel.unary_stream(
            "/pyagent.node.v1.Node/WatchTask",
            request_serializer=pb.DescribeTaskRequest.SerializeToString,
            response_deserializer=pb.TaskView.FromString,
        )

    def _follow_leader(self, error: grpc.RpcError) -> bool:
        """Switches to the leader an error names ("not the leader; node N is"); False if none."""
        if not isinstance(error, grpc.Call) or error.code() != grpc.StatusCode.FAILED_PRECONDITION:
            return False
        named = re.search(r"node (\d+) is", str(error.details()))
        if named is None:
            return False
        node = self.stack.nodes[int(named.group(1)) - 1]
        with self._lock:
            if self.address != node.grpc:
                self.leader_moves += 1
                self._connect(node.grpc)
        return True

    def close(self) -> None:
        self.channel.close()

    def op(self, manifest: str, expect: str, inputs: dict[str, Any] | None = None) -> Callable[[int], pb.TaskView]:
        m = self.work.manifests[manifest]

        def run(_: int) -> pb.TaskView:
            with self._lock:
                self._serial += 1
                task_id = f"{self.run_id}-{manifest}-{self._serial}"
            command = submit_command(task_id, m, inputs or {}, self.work)
            # A replay is refused by the API's check (UNAUTHENTICATED) or, when the colliding
            # command was not applied yet, at apply (a refusal naming it): signed again, counted.
            for attempt in range(5):
                try:
                    result = self._submit(self.signer.sign(command), timeout=30)
                    replay = not result.applied and "replay" in f"{result.refusal} {result.message}"
                except grpc.RpcError as error:
                    if attempt < 4 and self._follow_leader(error):
                        continue
                    replay = (
                        isinstance(error, grpc.Call)
                        and error.code() == grpc.StatusCode.UNAUTHENTICATED
                        and "replay" in str(error.details())
                    )
                    if not replay or attempt == 4:
                        raise
                if not replay or attempt == 4:
                    break
                with self._lock:
                    self.replays += 1
            if not result.applied:
                raise RuntimeError(f"{task_id} refused: {result.refusal} {result.message}")
            final: pb.TaskView | None = None
            view: pb.TaskView
            for view in self._watch(pb.DescribeTaskRequest(id=task_id), timeout=120):
                if view.state in FINAL_STATES:
                    final = view
                    break
            if final is None or final.state != expect:
                raise RuntimeError(f"{task_id} ended {final.state if final else 'unseen'}, not {expect}: {final}")
            return final

        return run


@contextlib.contextmanager
def swarm(daemon: Path, name: str = "bench-tasks", extra: str = "") -> Iterator[LocalStack]:
    """A running local stack of SPEC named `name`, with `extra` (YAML, top-level keys) added."""
    work = CACHE / ("tasks" if name == "bench-tasks" else name)  # the repository's disk: real fsync
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spec = work / "swarm.yaml"
    spec.write_text(SPEC.replace("name: bench-tasks", f"name: {name}", 1) + extra, encoding="utf-8")
    done = pyagent_cli("compile", str(spec), "--env", "local", "--out", str(work / "stacks"))
    if done.returncode != 0:
        raise SystemExit(f"pyagent compile failed:\n{done.stdout}{done.stderr}")
    stack, diag = load_stack(work / "stacks" / name / "local")
    if stack is None:
        raise SystemExit(f"cannot load the stack: {diag}")
    up = pyagent_cli("up", "--local", str(stack.folder), env=dict(os.environ, PYAGENT_NODE_BIN=str(daemon)))
    if up.returncode != 0:
        raise SystemExit(f"pyagent up failed:\n{up.stdout}{up.stderr}")
    try:
        yield stack
    finally:
        pyagent_cli("down", str(stack.folder), "--purge")


# -- Ray --------------------------------------------------------------------------------------
def ensure_ray() -> Path:
    return ensure_venv(RAY_VENV, "ray", "ray", RAY_VERSION)


class RaySide:
    """The driver process of benchmarks/ray_tasks_side.py, alive for the whole benchmark."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(ROOT / "benchmarks" / "ray_tasks_side.py"), str(RAY_CPUS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@"):
                data: dict[str, Any] = json.loads(line[2:])
                return data
        raise SystemExit(f"the Ray driver ended (exit {self.proc.wait()})")

    def run(self, clients: int, total: int) -> Sample:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"clients": clients, "total": total}) + "\n")
        self.proc.stdin.flush()
        data = self._read()
        return Sample(data["latencies"], data["elapsed"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the sandbox's overhead -------------------------------------------------------------------
def bare_true(runs: int) -> list[float]:
    """`/bin/true` spawned and reaped from this process, seconds each."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["true"], {})
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - start)
    return times


def step_figures(views: list[pb.TaskView]) -> dict[str, list[float]]:
    """From final views of `sandbox-true`: the sandbox's own elapsedMs, the step's committed wall
    time, and where the rest of submit-to-done went (leader-stamped, ms)."""
    out: dict[str, list[float]] = {"elapsed_ms": [], "step_wall_ms": [], "to_step_start_ms": [], "task_ms": []}
    for v in views:
        step = v.steps[0]
        trace = json.loads(step.output_json)
        out["elapsed_ms"].append(float(trace["elapsedMs"]))
        out["step_wall_ms"].append(float(step.finished_ms - step.started_ms))
        out["to_step_start_ms"].append(float(step.started_ms - v.submitted_ms))
        out["task_ms"].append(float(v.finished_ms - v.submitted_ms))
    return out


def crate_level() -> str:
    """pyagent-sandbox's own overhead test (its table, as printed)."""
    done = subprocess.run(
        ["cargo", "test", "-p", "pyagent-sandbox", "--release", "--test", "overhead", "--", "--ignored", "--nocapture"],
        cwd=ROOT / "native",
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"(failed, exit {done.returncode}: {done.stderr[-500:]})"
    # The table: from its header line (the one naming p50) to the first line that is not a row.
    lines = done.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "p50" in line), len(lines))
    table = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("test "):
            break
        table.append(line)
    return "\n".join(table)


# -- the run ----------------------------------------------------------------------------------
@dataclass
class Round:
    load: list[float]
    figures: dict[str, dict[str, float]]


def run_rounds(
    ours: Ours, ray: RaySide | None, sizes: dict[str, int], rounds: int
) -> tuple[dict[str, list[Round]], dict[str, list[float]]]:
    """Both workloads in `rounds` rounds; the order of the sides is reversed every other round."""
    sides: list[tuple[str, Callable[[int, int], Sample]]] = [
        ("pyagent sandbox-true", lambda c, n: measure(ours.op("sandbox-true", "succeeded"), c, n)),
        ("pyagent no-op", lambda c, n: measure(ours.op("no-op", "succeeded", {"trace": {}}), c, n)),
    ]
    if ray is not None:
        sides.append(("ray", ray.run))
    workloads = (("latency, 1 client", 1, sizes["single"]), (f"throughput, {MANY} clients", MANY, sizes["many"]))
    results: dict[str, list[Round]] = {name: [] for name, _, _ in workloads}
    steps: dict[str, list[float]] = {"bare_true_ms": []}
    for name, clients, total in workloads:
        for r in range(rounds):
            figures: dict[str, dict[str, float]] = {}
            at = load()
            order = sides if r % 2 == 0 else sides[::-1]
            for side, run in order:
                sample = run(clients, total)
                figures[side] = {"p50_ms": sample.p50_ms(), "p99_ms": sample.p99_ms(), "per_s": sample.per_s()}
                if side == "pyagent sandbox-true" and clients == 1:
                    per_step = step_figures(sample.views)
                    for key, values in per_step.items():
                        steps.setdefault(key, []).extend(values)
                        figures[side][f"{key}_p50"] = statistics.median(values)
                    bare = [t * 1000 for t in bare_true(total)]
                    steps["bare_true_ms"].extend(bare)
                    figures[side]["bare_true_ms_p50"] = statistics.median(bare)
                print(f"  {name:24} round {r + 1}: {side:22} {figures[side]['p50_ms']:8.2f} ms p50, "
                      f"{figures[side]['per_s']:8.1f}/s  (load {at[0]:.2f})", file=sys.stderr)  # fmt: skip
            results[name].append(Round(at, figures))
    return results, steps


def warm_up(ours: Ours, timeout: float = 120) -> None:
    """Until the workers registered and a task of each manifest ran."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            measure(ours.op("sandbox-true", "succeeded"), 4, 20)
            measure(ours.op("no-op", "succeeded", {"trace": {}}), 4, 20)
            return
        except (RuntimeError, grpc.RpcError) as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"the swarm ran no task within {timeout:.0f} s: {error}") from None
            time.sleep(0.5)


def write_record(kind: str, utc: str, record: dict[str, Any]) -> None:
    """benchmarks/results/<kind>-<utc>.json, and a line saying where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{kind}-{utc}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"recorded: {path.relative_to(ROOT)}")


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "native"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() + ("+dirty(native)" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per workload (default 5)")
    parser.add_argument("--no-ray", action="store_true", help="measure pyagent only")
    parser.add_argument("--crate-level", action="store_true", help="also run pyagent-sandbox's overhead test")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/tasks-*.json")
    parser.add_argument("--note", default="", help="recorded with the figures (e.g. which daemon build)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sizes = {"single": 40, "many": 320} if args.quick else {"single": 200, "many": 1280}
    daemon, diag = find_daemon(build=True, report=lambda m: print(m, file=sys.stderr))
    if daemon is None:
        raise SystemExit(f"no pyagent-node: {diag}")
    ray_python = None if args.no_ray else ensure_ray()
    started_load = load()
    utc = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    with swarm(daemon) as stack:
        ours = Ours(stack, f"b{utc}")
        ray = RaySide(ray_python) if ray_python else None
        try:
            warm_up(ours)
            results, steps = run_rounds(ours, ray, sizes, args.rounds)
        finally:
            ours.close()
            if ray:
                ray.close()
    crate = crate_level() if args.crate_level else None

    print(f"3 pyagent-node processes on loopback, fsync on; {os.cpu_count()} CPUs; load at start {started_load}")
    if ray:
        print(f"Ray {ray.info['version']}, ray.init(num_cpus={RAY_CPUS}), same machine; not durable")
    print(
        f"{args.rounds} rounds, side order reversed every other round; per round and side: {sizes['single']} tasks "
        f"by 1 client, {sizes['many']} by {MANY}; figures: median over rounds [min-max]"
    )
    header = f"{'workload':26} {'':8} {'pyagent sandbox-true':>24} {'pyagent no-op':>24} {'ray':>24}"
    print(header)
    print("-" * len(header))
    for name, taken in results.items():
        for i, (unit, key) in enumerate((("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"), ("tasks/s", "per_s"))):
            cells = []
            for side in ("pyagent sandbox-true", "pyagent no-op", "ray"):
                values = [r.figures[side][key] for r in taken if side in r.figures]
                cells.append(shown(values) if values else "-")
            print(f"{name if i == 0 else '':26} {unit:8} {cells[0]:>24} {cells[1]:>24} {cells[2]:>24}")
        loads = [r.load[0] for r in taken]
        print(f"{'':26} {'load':8} {shown(loads, 2):>24}")
    if ray:
        lat = results["latency, 1 client"]
        thr = results[f"throughput, {MANY} clients"]
        for side in ("pyagent sandbox-true", "pyagent no-op"):
            p50 = [r.figures[side]["p50_ms"] / r.figures["ray"]["p50_ms"] for r in lat]
            tps = [r.figures[side]["per_s"] / r.figures["ray"]["per_s"] for r in thr]
            print(f"{side}: p50 latency {shown(p50, 2)} x Ray's; throughput {shown(tps, 2)} x Ray's (per round)")
    print("targets (issue 17): p50 <= 5 ms; throughput >= 0.5 x Ray's")
    lat = results["latency, 1 client"]

    def p50s(key: str) -> list[float]:
        return [r.figures["pyagent sandbox-true"][key] for r in lat]

    overhead = [e - b for e, b in zip(p50s("elapsed_ms_p50"), p50s("bare_true_ms_p50"), strict=True)]
    wall = [e - b for e, b in zip(p50s("step_wall_ms_p50"), p50s("bare_true_ms_p50"), strict=True)]
    print(
        "sandbox step `true`, end to end through the daemon (p50 per round):\n"
        f"  elapsedMs (pyagent-sandbox's clock) {shown(p50s('elapsed_ms_p50'))} ms; "
        f"bare /bin/true from this process {shown(p50s('bare_true_ms_p50'), 2)} ms; "
        f"overhead {shown(overhead)} ms (target <= 10)\n"
        f"  step's committed wall (started..finished, incl. the report's commit) {shown(p50s('step_wall_ms_p50'))} ms;"
        f" minus bare {shown(wall)} ms\n"
        f"  submit -> step started {shown(p50s('to_step_start_ms_p50'))} ms; "
        f"submit -> task succeeded {shown(p50s('task_ms_p50'))} ms (leader-stamped, ms)"
    )
    print(f"submissions refused as a replay and signed again: {ours.replays}")
    print(f"leader moves followed (elections under load): {ours.leader_moves}")
    if crate is not None:
        print("pyagent-sandbox's overhead test (crate level, in-process tokio spawn):\n" + crate)
    if not args.no_record:
        record = {
            "benchmark": "tasks",
            "utc": utc,
            "commit": git_commit(),
            "daemon": str(daemon),
            "note": args.note,
            "command": shlex.join(["python", "benchmarks/tasks.py", *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_avg": started_load},
            "ray": ray.info if ray else None,
            "rounds": args.rounds,
            "sizes": {"single_client_tasks": sizes["single"], "many_clients_tasks": sizes["many"], "clients": MANY},
            "wait": "WatchTask stream on the leader",
            "replays_retried": ours.replays,
            "leader_moves": ours.leader_moves,
            "workloads": {
                name: [{"load_avg": r.load, "figures": r.figures} for r in taken] for name, taken in results.items()
            },
            "sandbox_true_ms": {key: spread(values) for key, values in steps.items() if values},
            "crate_level": crate,
        }
        write_record("tasks", utc, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
