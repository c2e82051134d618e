"""pyagent-mcp (the node's MCP client, Rust, rmcp) beside the official Python MCP SDK, calling the
same real server (`mcp-server-time`, from .tools/mcp-venv: .ci/install-mcp-servers.sh).

    python benchmarks/mcp_calls.py                      # 7 rounds of 20 calls
    python benchmarks/mcp_calls.py --rounds 3 --calls 10
    python benchmarks/mcp_calls.py --binary native/target/release/pyagent-mcp-call

Each round runs both sides, in alternating order, each a fresh client process against a fresh
server, and each timed inside the client (its own process start is not counted):
- start to first call: from starting the server to the first `get_current_time` result,
  through `initialize` and `tools/list` (pyagent-mcp lists the tools at start, to check names).
  pyagent-mcp starts the server in the sandbox (bubblewrap namespaces, Landlock, seccomp, the
  drop to nobody; no cgroup here); the SDK's `stdio_client` starts it bare: the row shows what
  the sandbox costs, not only the client.
- per call: the median of the following calls (one round trip each).
The client binary is `pyagent-mcp-call` (the crate's session in a process of its own); build it
with `cargo build --release -p pyagent-mcp` for figures worth recording. Needs root and bwrap,
like the sandbox. Figures: medians over rounds [min-max]; the ratio is ours / the SDK's. A JSON
record goes to benchmarks/results/mcp-<utc>.json. (Named mcp_calls.py, not mcp.py: beside the
other benchmarks on sys.path, a module named `mcp` would hide the SDK's package.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("PYAGENT_MCP_VENV", ROOT / ".tools" / "mcp-venv"))
RESULTS = ROOT / "benchmarks" / "results"
ARGS = {"timezone": "Europe/Paris"}

# The anchor, run by the venv's python (where the `mcp` SDK is): prints microseconds, one a line.
SDK_SIDE = """
import asyncio, sys, time
from mcp import ClientSession, StdioServerParameters, stdio_client

async def main(server: str, calls: int) -> None:
    t0 = time.perf_counter()
    async with stdio_client(StdioServerParameters(command=server)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await session.list_tools()
            await session.call_tool("get_current_time", {"timezone": "Europe/Paris"})
            print(int((time.perf_counter() - t0) * 1e6), flush=True)
            for _ in range(calls - 1):
                t = time.perf_counter()
                await session.call_tool("get_current_time", {"timezone": "Europe/Paris"})
                print(int((time.perf_counter() - t) * 1e6), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def git_commit() -> str:
    """HEAD, with "-dirty" when the working tree differs from it (the figures are then not HEAD's)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, cwd=ROOT)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def default_binary() -> Path:
    for profile in ("release", "host/release", "debug", "host/debug"):
        p = ROOT / "native" / "target" / profile / "pyagent-mcp-call"
        if p.is_file():
            return p
    sys.exit("no pyagent-mcp-call: cargo build --release -p pyagent-mcp (from native/)")


def ours(binary: Path, calls: int) -> list[int]:
    with tempfile.TemporaryDirectory(prefix="pyagent-mcp-bench-") as ws:
        os.chmod(ws, 0o755)
        request = {
            "workspace": ws,
            "server": {
                "name": "time",
                "transport": "stdio",
                "command": [str(VENV / "bin" / "mcp-server-time")],
                "url": None,
                "port": None,
            },
            "readOnly": [str(VENV.resolve())],
            "tool": "get_current_time",
            "arguments": ARGS,
            "calls": calls,
        }
        out = subprocess.run([str(binary), json.dumps(request)], capture_output=True, text=True, check=False)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or len(lines) != calls or any("error" in x for x in lines):
        sys.exit(f"pyagent-mcp-call failed ({out.returncode}): {out.stdout}{out.stderr}")
    return [int(x["micros"]) for x in lines]


def theirs(calls: int) -> list[int]:
    server = str(VENV / "bin" / "mcp-server-time")
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", SDK_SIDE, server, str(calls)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"the SDK side failed: {out.stderr}")
    return [int(x) for x in out.stdout.split()]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values) / 1000:.1f} ms [{min(values) / 1000:.1f}-{max(values) / 1000:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--binary", type=Path, default=None)
    a = parser.parse_args()
    if not (VENV / "bin" / "mcp-server-time").is_file():
        sys.exit(f"no MCP servers in {VENV}: run .ci/install-mcp-servers.sh")
    binary = a.binary or default_binary()
    rows: dict[str, dict[str, list[float]]] = {
        "start to first call": {"ours": [], "sdk": []},
        "per call (median)": {"ours": [], "sdk": []},
    }
    loads: list[str] = []
    for r in range(a.rounds):
        loads.append(Path("/proc/loadavg").read_text().split(" ")[0])
        sides: list[tuple[str, Callable[[], list[int]]]] = [
            ("ours", lambda: ours(binary, a.calls)),
            ("sdk", lambda: theirs(a.calls)),
        ]
        for name, run in sides if r % 2 == 0 else reversed(sides):
            micros = run()
            rows["start to first call"][name].append(micros[0])
            rows["per call (median)"][name].append(statistics.median(micros[1:]))
    print(f"pyagent-mcp ({binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}) vs mcp SDK,")
    print(f"mcp-server-time, {a.rounds} rounds x {a.calls} calls, load {' '.join(loads)}\n")
    print(f"{'':22} {'pyagent-mcp (sandboxed)':>28} {'python mcp SDK (bare)':>28} {'ratio':>7}")
    for metric, sides_values in rows.items():
        ratios = [o / s for o, s in zip(sides_values["ours"], sides_values["sdk"], strict=True)]
        print(
            f"{metric:22} {spread(sides_values['ours']):>28} {spread(sides_values['sdk']):>28} "
            f"{statistics.median(ratios):>6.2f}x"
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    record: dict[str, Any] = {
        "commit": git_commit(),
        "command": sys.argv,
        "binary": str(binary),
        "rounds": a.rounds,
        "calls": a.calls,
        "loadavg": loads,
        "samples_us": rows,
    }
    path = RESULTS / f"mcp-{stamp}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"\nrecord: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
