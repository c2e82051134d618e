"""What watching a swarm costs its tasks: tracing and metrics on against off (issue 21; target:
under 5%), on the task benchmark's workloads (benchmarks/tasks.py).

    python benchmarks/telemetry_overhead.py            # 5 alternating rounds per workload
    python benchmarks/telemetry_overhead.py --quick    # smaller counts (a smoke run)

Two local swarms of 3 pyagent-node processes run at once, identical but for telemetry:

- on (`bench-watched`): `observability.traces` set, so every node exports each task's spans
  (task, queued, each step attempt) over OTLP/gRPC to a real OpenTelemetry Collector
  (pyagent-otelcol, native/otelcol) that writes them to a file; and every node's `/metrics` is
  scraped every second, as a Prometheus would (its default interval is 60 s, kube-prometheus-
  stack's 30 s: 1 s is the harsh end).
- off (`bench-unwatched`): no `traces` section (the daemon creates no exporter) and nobody scrapes.

Workloads, measured as benchmarks/tasks.py does (submit to the leader, follow the task with
`WatchTask` until it ends): the `no-op` task (one `analyze-trace` step, in the daemon: the task
machinery alone, where a fixed cost shows most) from 1 client (p50 latency) and from 64 clients
(tasks/s); and `sandbox-true` from 1 client. In every round both swarms run the same workload, the
order reversed every other round; the idle swarm only sends heartbeats. Figures: median over
rounds [min-max], overhead = on / off - 1 per round. The spans the collector received are
counted, so "on" is seen to be on. A JSON record goes to benchmarks/results/telemetry-<utc>.json.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.tasks import (  # noqa: E402
    MANY,
    Ours,
    Sample,
    git_commit,
    load,
    measure,
    shown,
    spread,
    swarm,
    warm_up,
    write_record,
)
from pyagent_compile.plan.local import port_slot  # noqa: E402
from pyagent_compile.runtime.local.daemon import find_daemon  # noqa: E402
from pyagent_compile.runtime.local.stack import LocalStack  # noqa: E402
from tests.integration import collector as otel  # noqa: E402

WATCHED, UNWATCHED = "bench-watched", "bench-unwatched"
SCRAPE_SECONDS = 1.0
TRACES = """
observability:
  traces:
    endpoint: {endpoint}
"""


class Scraper:
    """GET /metrics of every node every `interval` seconds, in a thread, as Prometheus would."""

    def __init__(self, stack: LocalStack, interval: float) -> None:
        self.urls = [f"http://{n.metrics}/metrics" for n in stack.nodes]
        self.interval = interval
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for url in self.urls:
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        response.read()
                    self.scrapes += 1
                except OSError:
                    self.failures += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def workloads(sizes: dict[str, int]) -> list[tuple[str, str, int, int]]:
    """(name, manifest, clients, tasks)."""
    return [
        ("no-op, 1 client", "no-op", 1, sizes["single"]),
        (f"no-op, {MANY} clients", "no-op", MANY, sizes["many"]),
        ("sandbox-true, 1 client", "sandbox-true", 1, sizes["single"]),
    ]


def run(ours: Ours, manifest: str, clients: int, total: int) -> Sample:
    inputs = {"trace": {}} if manifest == "no-op" else None
    return measure(ours.op(manifest, "succeeded", inputs), clients, total)


def rounds_of(
    sides: dict[str, Ours], sizes: dict[str, int], rounds: int
) -> dict[str, list[dict[str, dict[str, float]]]]:
    results: dict[str, list[dict[str, dict[str, float]]]] = {}
    order = list(sides)
    for name, manifest, clients, total in workloads(sizes):
        results[name] = []
        for r in range(rounds):
            at = load()
            figures: dict[str, dict[str, float]] = {"load": {"avg1": at[0]}}
            for side in order if r % 2 == 0 else order[::-1]:
                sample = run(sides[side], manifest, clients, total)
                figures[side] = {"p50_ms": sample.p50_ms(), "p99_ms": sample.p99_ms(), "per_s": sample.per_s()}
                print(f"  {name:22} round {r + 1}: {side:4} {figures[side]['p50_ms']:7.2f} ms p50 "
                      f"{figures[side]['per_s']:7.1f}/s (load {at[0]:.2f})", file=sys.stderr)  # fmt: skip
            results[name].append(figures)
    return results


def overheads(taken: list[dict[str, dict[str, float]]], key: str, higher_is_worse: bool) -> list[float]:
    """Per round, how much worse `on` is than `off`, in %."""
    out = []
    for f in taken:
        on, off = f["on"][key], f["off"][key]
        out.append((on / off - 1) * 100 if higher_is_worse else (off / on - 1) * 100)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per workload (default 5)")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/telemetry-*.json")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if port_slot(WATCHED) == port_slot(UNWATCHED):
        raise SystemExit(f"{WATCHED} and {UNWATCHED} share a port slot: rename one")
    if shutil.which(otel.BINARY) is None:
        raise SystemExit(f"{otel.BINARY} is not installed: bash .ci/install-otelcol.sh")
    sizes = {"single": 40, "many": 320} if args.quick else {"single": 200, "many": 1280}
    daemon, diag = find_daemon(build=True, report=lambda m: print(m, file=sys.stderr))
    if daemon is None:
        raise SystemExit(f"no pyagent-node: {diag}")
    started_load = load()
    utc = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="pyagent-otelcol-") as folder:
        collector = otel.start(Path(folder))
        assert collector is not None
        try:
            with (
                swarm(daemon, WATCHED, TRACES.format(endpoint=collector.endpoint)) as watched,
                swarm(daemon, UNWATCHED) as unwatched,
            ):
                sides = {"on": Ours(watched, f"w{utc}"), "off": Ours(unwatched, f"u{utc}")}
                scraper = Scraper(watched, SCRAPE_SECONDS)
                try:
                    for ours in sides.values():
                        warm_up(ours)
                    results = rounds_of(sides, sizes, args.rounds)
                finally:
                    scraper.stop()
                    for ours in sides.values():
                        ours.close()
            # The nodes sent what they held when they stopped; the collector flushes every 0.1 s.
            time.sleep(1)
            spans = collector.spans()
        finally:
            collector.stop()
    tasks_on = {s.attributes.get("pyagent.task.id") for s in spans if s.name.startswith("task ")}
    names: dict[str, int] = {}
    for s in spans:
        kind = s.name.split(" ")[0]
        names[kind] = names.get(kind, 0) + 1

    print(f"3 + 3 pyagent-node processes on loopback, fsync on; {os.cpu_count()} CPUs; load at start {started_load}")
    print(
        f"on: traces over OTLP/gRPC to {otel.BINARY} (file exporter) and /metrics of every node scraped every "
        f"{SCRAPE_SECONDS:g} s ({scraper.scrapes} scrapes, {scraper.failures} failed); off: neither"
    )
    print(f"spans received: {len(spans)} ({', '.join(f'{k} {v}' for k, v in sorted(names.items()))}), "
          f"task spans of {len(tasks_on)} tasks")  # fmt: skip
    print(
        f"{args.rounds} rounds, order reversed every other round; per round and side: {sizes['single']} tasks "
        f"from 1 client, {sizes['many']} from {MANY}; median over rounds [min-max]"
    )
    header = f"{'workload':24} {'':8} {'off':>22} {'on':>22} {'overhead %':>22}"
    print(header)
    print("-" * len(header))
    for name, taken in results.items():
        rows = (("p50 ms", "p50_ms", True), ("p99 ms", "p99_ms", True), ("tasks/s", "per_s", False))
        for i, (unit, key, worse_up) in enumerate(rows):
            off = shown([f["off"][key] for f in taken], 2)
            on = shown([f["on"][key] for f in taken], 2)
            over = shown(overheads(taken, key, worse_up), 1)
            print(f"{name if i == 0 else '':24} {unit:8} {off:>22} {on:>22} {over:>22}")
    print("target (issue 21): overhead under 5% (p50 latency and tasks/s)")
    if not args.no_record:
        record = {
            "benchmark": "telemetry-overhead",
            "utc": utc,
            "commit": git_commit(),
            "command": shlex.join(["python", "benchmarks/telemetry_overhead.py", *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_avg": started_load},
            "rounds": args.rounds,
            "sizes": {"single_client_tasks": sizes["single"], "many_clients_tasks": sizes["many"], "clients": MANY},
            "on": {"traces": "OTLP/gRPC to pyagent-otelcol", "scrape_interval_s": SCRAPE_SECONDS},
            "spans_received": len(spans),
            "span_kinds": names,
            "scrapes": scraper.scrapes,
            "workloads": results,
            "overhead_pct": {
                name: {
                    "p50_ms": spread(overheads(taken, "p50_ms", True)),
                    "per_s": spread(overheads(taken, "per_s", False)),
                }
                for name, taken in results.items()
            },
        }
        write_record("telemetry", utc, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
