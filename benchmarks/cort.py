"""What CoRT costs beyond the model's own time, per round, against a real llama.cpp server.

    python benchmarks/cort.py                  # 7 runs of 2 rounds x 2 alternatives
    python benchmarks/cort.py --runs 15 --rounds 3 --alternatives 3 --max-tokens 32

The server is llama-cpp-python's (.ci/install-llama.sh) serving the tiny random-weight model of
native/crates/pyagent-model/tests/tiny_gguf.py, on loopback, one thread: a model this small makes
each request short (a few ms), so the overhead is as visible as it can be. CoRT runs in
`cort_run` (pyagent-model's example, release build). For each round:

    overhead = the round's wall time - the sum of its requests' times (as the client saw them)

which is CoRT's own work: building prompts, parsing the verdict, recording. The anchor is the
same requests replayed by a bare Python loop (http.client, one kept-alive connection, the prompts
taken from the record), timed the same way: request time ours / anchor compares the two clients'
transport on identical requests. Figures are medians [min-max] over the runs; each run is
recorded in benchmarks/results/cort-<UTC>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CRATE = ROOT / "native" / "crates" / "pyagent-model"
LLAMA_PYTHON = ROOT / ".tools" / "llama-venv" / "bin" / "python"
PROMPT = "Explain why `assert add(2, 2) == 5` fails."


def build_runner() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "native" / "target"))
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "pyagent-model", "--example", "cort_run"],
        cwd=ROOT / "native",
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
    )
    return target / "release" / "examples" / "cort_run"


def start_server(folder: Path) -> tuple[subprocess.Popen[str], int]:
    model = folder / "tiny.gguf"
    subprocess.run([str(LLAMA_PYTHON), str(CRATE / "tests" / "tiny_gguf.py"), str(model)], check=True)
    args = ["-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", "0"]
    args += ["--chat_format", "chatml", "--n_ctx", "2048", "--n_threads", "1", "--verbose", "false"]
    server = subprocess.Popen([str(LLAMA_PYTHON), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert server.stderr is not None
    for line in server.stderr:  # uvicorn reports the port the kernel gave it
        found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
        if found:
            # Keep reading, so that the server never blocks on a full pipe.
            threading.Thread(target=server.stderr.read, daemon=True).start()
            return server, int(found.group(1))
    raise SystemExit(f"llama_cpp.server exited ({server.wait()}) before listening")


def wait_ready(port: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server never answered /v1/models")


def exchanges(round_: dict[str, Any]) -> list[dict[str, Any]]:
    return [*round_["alternatives"], round_["judge"]]


def replay(port: int, record: dict[str, Any], max_tokens: int) -> list[tuple[float, float]]:
    """The record's requests again from a bare Python loop: per round (wall s, sum of requests s)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    rounds = []
    for round_ in record["rounds"]:
        started, spent = time.perf_counter(), 0.0
        for exchange in exchanges(round_):
            body = {
                "model": "bench",
                "messages": exchange["prompt"],
                "stream": False,
                "temperature": 0.0,
                "seed": 7,
                "max_tokens": max_tokens,
            }
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
            answer = json.loads(conn.getresponse().read())
            spent += time.perf_counter() - t0
            assert answer["choices"][0]["message"]["content"] == exchange["answer"], "the replay diverged"
        rounds.append((time.perf_counter() - started, spent))
    return rounds


def ours(record: dict[str, Any]) -> list[tuple[float, float]]:
    return [(r["elapsedUs"] / 1e6, sum(e["elapsedUs"] for e in exchanges(r)) / 1e6) for r in record["rounds"]]


def summary(values: list[float], unit: float = 1e3, fmt: str = "{:.3f}") -> str:
    scaled = [v * unit for v in values]
    med = statistics.median(scaled)
    return f"{fmt.format(med)} [{fmt.format(min(scaled))}-{fmt.format(max(scaled))}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--alternatives", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    if not LLAMA_PYTHON.exists():
        raise SystemExit(f"{LLAMA_PYTHON} is missing: run .ci/install-llama.sh")
    runner = build_runner()
    samples: dict[str, list[float]] = {
        k: [] for k in ("overhead", "overhead_pct", "req", "anchor_overhead", "anchor_req")
    }
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        server, port = start_server(Path(tmp))
        try:
            wait_ready(port)
            endpoint = f"http://127.0.0.1:{port}/v1"
            for i in range(args.runs):
                argv = [str(runner), endpoint, str(args.rounds), str(args.alternatives), str(args.max_tokens), PROMPT]
                record = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
                anchor = replay(port, record, args.max_tokens)
                mine = ours(record)
                n = args.alternatives + 1
                for (wall, req), (a_wall, a_req) in zip(mine, anchor, strict=True):
                    samples["overhead"].append(wall - req)
                    samples["overhead_pct"].append((wall - req) / wall)
                    samples["req"].append(req / n)
                    samples["anchor_overhead"].append(a_wall - a_req)
                    samples["anchor_req"].append(a_req / n)
                runs.append({"run": i, "ours": mine, "anchor": anchor, "requests": record["requests"]})
        finally:
            server.terminate()
            server.wait(timeout=30)
    ratio = [a / b for a, b in zip(samples["req"], samples["anchor_req"], strict=True)]
    load = os.getloadavg()
    print(
        f"CoRT {args.rounds} rounds x {args.alternatives} alternatives, {args.runs} runs, maxTokens {args.max_tokens};"
    )
    print(f"llama.cpp (llama-cpp-python) tiny model on loopback; load average {load[0]:.2f}")
    rows = [
        ("per round", "ours", "anchor (Python loop)"),
        ("overhead beyond the requests, ms", summary(samples["overhead"]), summary(samples["anchor_overhead"])),
        ("overhead, % of the round", summary(samples["overhead_pct"], 100, "{:.2f}"), ""),
        ("one request as the client saw it, ms", summary(samples["req"]), summary(samples["anchor_req"])),
        ("request time ours / anchor", summary(ratio, 1), ""),
    ]
    for name, a, b in rows:
        print(f"{name:<40} {a:>26} {b:>26}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "benchmarks" / "results" / f"cort-{stamp}.json"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    out.write_text(
        json.dumps(
            {
                "commit": commit + ("-dirty" if dirty else ""),
                "command": " ".join(sys.argv),
                "load": load,
                "settings": vars(args),
                "samples": samples,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"recorded: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
