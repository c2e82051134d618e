"""Ray's side of benchmarks/tasks.py: a driver of a local Ray cluster, measured on request.

Runs under .bench-cache/ray-venv's Python (Ray is never installed into the project's .venv), as a
child of benchmarks/tasks.py, which alternates rounds between pyagent and this process. It starts
`ray.init(num_cpus=N)` once, warms up, then answers one JSON line per request on stdin:

    {"clients": 1, "total": 200}   ->   @@{"latencies": [...], "elapsed": 1.23}

Each of `clients` threads runs a closed loop of `ray.get(noop.remote())` (submit, then wait for
the result), exactly as pyagent's side runs submit-then-wait-until-succeeded. Threads and
`ray.get` rather than asyncio and `await ref`: on this machine the blocking call is Ray's faster
path (1 client: p50 1.3 ms against 4.8 ms awaited; 64 clients: 640-1000 tasks/s against 400), and
the anchor gets its best. Lines of ours start with "@@" so that anything Ray prints on stdout is
told apart.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from typing import Any

import ray


@ray.remote
def noop() -> None:
    return None


def measure(clients: int, total: int) -> dict[str, Any]:
    latencies: list[float] = []
    counter = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            start = time.perf_counter()
            ray.get(noop.remote())
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)

    # As on pyagent's side: no collection of the driver's garbage while timing.
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
    return {"latencies": latencies, "elapsed": elapsed}


def reply(data: dict[str, Any]) -> None:
    sys.stdout.write("@@" + json.dumps(data) + "\n")
    sys.stdout.flush()


def main() -> int:
    num_cpus = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024 * 1024,
        configure_logging=False,
    )
    # Warm-up: workers started and leased, the function exported.
    measure(8, 400)
    reply({"ready": True, "version": ray.__version__, "num_cpus": num_cpus})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        reply(measure(int(request["clients"]), int(request["total"])))
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
