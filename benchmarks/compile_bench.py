"""Compile-time benchmark: pyagent beside the real `cue` CLI, in the same run, sides alternating.

What each side does (the rows say it too):
- pyagent: `pyagent compile SPEC --out DIR` in a fresh process, as a user runs it: load YAML,
  overlays, model, semantic checks, plan, render and write every file of every environment
  (Pulumi program, manifests, local target).
- cue: `cue export --out json` of the same data unified with pyagent's `#Swarm` schema, in a
  fresh process: evaluation and constraint checking only (no semantic checks, no rendering,
  JSON to stdout). It is the anchor for "how long does reading and checking this spec take".

Start-up is reported on its own (`pyagent --version`, and a 1-pool spec on both sides): editors
and pre-commit hooks run the CLI constantly, so it is a user-facing figure with its own target.
The per-pool cost is the slope between the smallest and each larger size, so start-up does not
hide in it. Every figure is the median of --runs runs with its range [min-max]; within a round
the two sides take turns, first one then the other, so load on this shared machine falls on both.
Each run is recorded as JSON under benchmarks/results/ (machine load included).

Bytecode: the package's .pyc files are written first (`compileall`), as pip does when it installs
a wheel. This machine sets PYTHONDONTWRITEBYTECODE=1, so without that step every run compiled
every module of pyagent_compile from source (~0.05 s of each start-up) - not what users see.

    .venv/bin/python benchmarks/compile_bench.py [--runs 5] [--sizes 1,10,100,1000,5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.cue_bench import write_specs  # noqa: E402
from benchmarks.specgen import generate_spec  # noqa: E402

SIZES = (1, 10, 100, 1000, 5000)
STARTUP_TARGET = 0.2  # seconds, a 1-pool compile (issue "Benchmarks that say exactly what they measure")
RESULTS = REPO / "benchmarks" / "results"
# One process per run, so start-up is counted as users see it; it reports its own peak RSS.
# The machines are shared: a compile that grows past this much address space fails (MemoryError)
# instead of taking the machine's memory from everyone else; the benchmark then stops at that size.
MEMORY_LIMIT_GIB = 6
RUNNER = (
    "import resource, sys\n"
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_GIB} << 30, resource.RLIM_INFINITY))\n"
    "from pyagent_compile.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@dataclass
class Sample:
    """The runs of one side at one size, in seconds (and peak MiB, where measured)."""

    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)
    # CPU time (user + system) of the process and its children: a busy machine preempts a run
    # (wall time grows) more than it slows its CPU work, so this is the steadier figure.
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def cell(self) -> str:
        return f"{self.median:.3f} [{min(self.seconds):.3f}-{max(self.seconds):.3f}]"

    def cpu_cell(self) -> str:
        c = self.cpu_seconds
        return f"{statistics.median(c):.3f} [{min(c):.3f}-{max(c):.3f}]" if c else "-"

    def add(self, run: tuple[float, float, str]) -> str:
        self.seconds.append(run[0])
        self.cpu_seconds.append(run[1])
        return run[2]


class RunFailed(SystemExit):
    """A timed command exited non-zero: its status and the last line it wrote to stderr."""

    def __init__(self, command: list[str], status: int, stderr: str) -> None:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        self.reason = f"exit {status}" + (f": {lines[-1]}" if lines else "")
        super().__init__(f"failed: {' '.join(command)}\n{stderr}")


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, the process and its children) and stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RunFailed(command, done.returncode, done.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, done.stderr


def alternate(sides: dict[str, Callable[[], None]], runs: int) -> None:
    """`runs` rounds; in round i the sides go in turn, starting with a different one each round."""
    names = list(sides)
    for i in range(runs):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            sides[name]()


def pyagent_run(spec: Path, out: Path, sample: Sample) -> Callable[[], None]:
    def run() -> None:
        shutil.rmtree(out, ignore_errors=True)
        err = sample.add(timed([sys.executable, "-c", RUNNER, "compile", str(spec), "--out", str(out)]))
        sample.peak_mib.append(int(err.strip().splitlines()[-1]) / 1024)

    return run


def cue_run(cue: str, source: Path, sample: Sample) -> Callable[[], None]:
    def run() -> None:
        sample.add(timed([cue, "export", "--out", "json", "./" + source.name], cwd=source.parent))

    return run


def pyagent_command() -> list[str]:
    """The `pyagent` console script beside this interpreter, as users run it (else `-m`)."""
    script = Path(sys.executable).parent / "pyagent"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pyagent_compile"]


def compile_bytecode() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "pyagent_compile")], check=True)


def startup(runs: int, cue: str | None) -> dict[str, Sample]:
    """`pyagent --version` beside `cue version`: the cost of starting each CLI at all."""
    samples = {"pyagent --version": Sample(), "cue version": Sample()}

    def side(name: str, command: list[str]) -> Callable[[], None]:
        def run() -> None:
            samples[name].add(timed(command))

        return run

    sides = {"pyagent": side("pyagent --version", [*pyagent_command(), "--version"])}
    if cue is not None:
        sides["cue"] = side("cue version", [cue, "version"])
    alternate(sides, runs)
    return {k: v for k, v in samples.items() if v.seconds}


def size_row(pools: int, folder: Path, runs: int, cue: str | None) -> dict[str, Any]:
    data = generate_spec(pools)
    spec = folder / "swarm.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    ours, theirs = Sample(), Sample()
    sides = {"pyagent": pyagent_run(spec, folder / "out", ours)}
    if cue is not None:
        _, source = write_specs(data, folder / "cue")  # a CUE module importing the vendored #Swarm
        sides["cue"] = cue_run(cue, source, theirs)
    alternate(sides, runs)
    objects = sum(1 for _ in (folder / "out").rglob("manifests/*.yaml"))
    return {
        "pools": pools,
        "spec_lines": len(spec.read_text().splitlines()),
        "objects": objects,
        "pyagent": ours,
        "cue": theirs if theirs.seconds else None,
    }


def print_report(start: dict[str, Sample], rows: list[dict[str, Any]], runs: int) -> None:
    print(
        f"medians of {runs} runs [min-max], seconds, one fresh process per run, sides alternating; wall time, "
        "and CPU time (user + system) where the column says so\n"
    )
    print(f"start-up {'wall':>28} {'CPU':>22}")
    for name, sample in start.items():
        print(f"  {name:<22} {sample.cell():>22} {sample.cpu_cell():>22}")
    print()
    header = (
        f"{'pools':>6} {'lines':>7} {'objects':>8}  {'pyagent compile (all stages, files)':>36}  "
        f"{'pyagent CPU':>22}  {'peak MiB':>8}  {'cue export vs #Swarm (eval only)':>33}  {'ratio':>6}  "
        f"{'pyagent ms/pool':>15}"
    )
    print(header)
    base = rows[0]
    for row in rows:
        ours: Sample = row["pyagent"]
        theirs: Sample | None = row["cue"]
        ratio = f"{ours.median / theirs.median:6.2f}" if theirs else f"{'n/a':>6}"
        span = row["pools"] - base["pools"]
        per_pool = (ours.median - base["pyagent"].median) / span * 1000 if span else None
        slope = f"{per_pool:15.2f}" if per_pool is not None else f"{'(base)':>15}"
        cue_cell = theirs.cell() if theirs else "n/a (cue not on PATH)"
        print(
            f"{row['pools']:>6} {row['spec_lines']:>7} {row['objects']:>8}  {ours.cell():>36}  "
            f"{ours.cpu_cell():>22}  {max(ours.peak_mib):8.1f}  {cue_cell:>33}  {ratio}  {slope}"
        )
    small = base["pyagent"].median
    small_cpu = statistics.median(base["pyagent"].cpu_seconds)
    verdict = "meets" if small <= STARTUP_TARGET else "MISSES"
    verdict_cpu = "meets" if small_cpu <= STARTUP_TARGET else "MISSES"
    version = start.get("pyagent --version")
    if version is not None:
        v_verdict = "meets" if version.median <= STARTUP_TARGET else "MISSES"
        print(
            f"\nstart-up target: `pyagent --version` in at most {STARTUP_TARGET} s -> {v_verdict} "
            f"({version.median:.3f} s)"
        )
    print(
        f"start-up target: a {base['pools']}-pool compile in at most {STARTUP_TARGET} s -> wall {verdict} "
        f"({small:.3f} s), CPU {verdict_cpu} ({small_cpu:.3f} s).\nLike for like: at each size pyagent's whole "
        "compile beside cue's evaluation of the same data; pyagent also renders and writes every stack file, "
        "which cue does not."
    )


def record(
    start: dict[str, Sample], rows: list[dict[str, Any]], runs: int, load_start: tuple[float, ...], stopped: str
) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    commit += "-dirty" if dirty else ""
    document = {
        "benchmark": "compile_bench",
        "utc": stamp,
        "commit": commit,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_start": load_start,
            "load_avg": os.getloadavg(),
        },
        "bytecode": "compiled before the runs (compileall)",
        "memory_limit_gib": MEMORY_LIMIT_GIB,
        "stopped": stopped or None,
        "runs": runs,
        "startup": {k: asdict(v) for k, v in start.items()},
        "sizes": [
            {
                **{k: v for k, v in r.items() if k not in ("pyagent", "cue")},
                "pyagent": asdict(r["pyagent"]),
                "cue": asdict(r["cue"]) if r["cue"] else None,
            }
            for r in rows
        ],
    }
    path = RESULTS / f"compile-{stamp}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per size and side; medians are reported")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="pool counts, smallest first")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    cue = shutil.which("cue") or shutil.which("cue", path=str(REPO / ".tools" / "bin"))  # .ci/setup installs it
    compile_bytecode()
    load_start = os.getloadavg()
    start = startup(args.runs, cue)
    rows = []
    stopped = ""
    with tempfile.TemporaryDirectory() as tmp:
        for pools in sizes:
            folder = Path(tmp) / str(pools)
            folder.mkdir()
            try:
                rows.append(size_row(pools, folder, args.runs, cue))
            except RunFailed as failed:
                stopped = f"{pools} pools: the compile failed ({failed.reason}); larger sizes not run"
                print(stopped)
                break
    if rows:
        print_report(start, rows, args.runs)
    if stopped:
        print(f"\nstopped at {stopped}; a compile may use {MEMORY_LIMIT_GIB} GiB of address space")
    load_end = os.getloadavg()
    print(f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end, {os.cpu_count()} CPUs")
    print(f"\nrecorded in {record(start, rows, args.runs, load_start, stopped).relative_to(REPO)}")


if __name__ == "__main__":
    main()
