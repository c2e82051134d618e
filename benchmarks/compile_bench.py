"""Compile-time benchmark: specs of 10, 100 and 1000 node pools (firewall rules and logic
manifests in proportion), timed end to end as a user runs `pyagent compile`, with peak memory.

The anchor, measured in the same run on the same machine: the real `cue` CLI exporting the same
spec unified with pyagent's `#Swarm` schema (`cue export`: evaluation and constraint checking,
no semantic checks, no rendering, no files), when `cue` is on PATH (`make setup` installs it).
Published figures are printed for reference, not compared as measurements.

    .venv/bin/python benchmarks/compile_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.cue_bench import write_specs
from benchmarks.specgen import generate_spec

SIZES = (10, 100, 1000)
TARGET_SECONDS = 2.0
# One process per run, so start-up is counted as users see it; it reports its own peak RSS.
RUNNER = (
    "import resource, sys\n"
    "from pyagent_compile.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    return elapsed, done.stderr


def bench_pyagent(spec: Path, out: Path, runs: int) -> tuple[float, float]:
    times, peaks = [], []
    for run in range(runs):
        elapsed, err = timed([sys.executable, "-c", RUNNER, "compile", str(spec), "--out", str(out / str(run))])
        times.append(elapsed)
        peaks.append(int(err.strip().splitlines()[-1]) / 1024)
    return statistics.median(times), max(peaks)


def bench_cue(data: dict[str, Any], folder: Path, runs: int) -> float | None:
    cue = shutil.which("cue")
    if cue is None:
        return None
    _, source = write_specs(data, folder)  # a CUE module importing the vendored #Swarm schema
    command = [cue, "export", "--out", "json", "./" + source.name]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=source.parent, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per size; the median is reported")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pools in SIZES:
            folder = Path(tmp) / str(pools)
            folder.mkdir()
            data = generate_spec(pools)
            spec = folder / "swarm.yaml"
            spec.write_text(yaml.safe_dump(data, sort_keys=False))
            seconds, peak = bench_pyagent(spec, folder / "out", args.runs)
            cue = bench_cue(data, folder / "cue", args.runs)
            objects = sum(1 for _ in (folder / "out" / "0").rglob("manifests/*.yaml"))
            rows.append((pools, len(spec.read_text().splitlines()), objects, seconds, peak, cue))
    print_table(rows, args.runs)


def print_table(rows: list[tuple[int, int, int, float, float, float | None]], runs: int) -> None:
    print(f"pyagent compile, median of {runs} runs, one process per run (start-up included)\n")
    print(
        f"{'pools':>6} {'spec lines':>10} {'objects':>8} {'pyagent s':>10} {'peak MiB':>9} "
        f"{'cue export s':>13} {'pyagent/cue':>12} {'growth':>8}"
    )
    previous: float | None = None
    for pools, lines, objects, seconds, peak, cue in rows:
        cue_text = f"{cue:13.3f}" if cue is not None else f"{'n/a':>13}"
        ratio = f"{seconds / cue:12.2f}" if cue else f"{'n/a':>12}"
        growth = f"{seconds / previous:7.1f}x" if previous else f"{'':>8}"
        print(f"{pools:>6} {lines:>10} {objects:>8} {seconds:10.3f} {peak:9.1f} {cue_text} {ratio} {growth}")
        previous = seconds
    largest = rows[-1][3]
    verdict = "meets" if largest < TARGET_SECONDS else "MISSES"
    print(
        f"\ntarget: {rows[-1][0]} pools under {TARGET_SECONDS:.0f} s -> {verdict} ({largest:.2f} s); "
        "growth per 10x pools must stay <= 11x"
    )
    print(
        "cue export evaluates the spec against #Swarm (no semantic checks, no rendering, no files); published "
        "single-core figures for one config: KCL 0.44 s, CUE 6.29 s, Jsonnet 3.34 s (ANCHORS.md)"
    )


if __name__ == "__main__":
    main()
