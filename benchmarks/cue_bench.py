"""How long a CUE spec takes, beside the same spec in YAML.

The compiler benchmark's 1000-pool spec (benchmarks/specgen.py when present, else the
generator below) is written as swarm.yaml and as swarm.cue (a CUE package importing the
schema, the same data). Printed, medians of --runs runs on this machine:

- `cue export --out json` alone (the evaluator's share),
- `cuepos` alone (positions, run beside cue export by pyagent),
- `pyagent compile` of the .cue and of the .yaml,

each as wall-clock and CPU seconds (CPU is steadier on a busy machine), with the ratio to
the YAML compile.

    python benchmarks/cue_bench.py [--pools 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyagent_compile.load.cue import find_cue, find_cuepos, schema_text  # noqa: E402

DIGEST = "4b1f0c2f6a3d8e9b7c5a1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a"


def _local_generate_spec(pools: int) -> dict[str, Any]:
    """A swarm of `pools` pools (used when benchmarks/specgen.py is not there)."""
    nodes: dict[str, Any] = {
        "control": {"replicas": 5, "roles": ["voter"], "hardware": {"cpu": 2, "memory": "4Gi"}},
    }
    for i in range(pools - 1):
        nodes[f"pool-{i:04d}"] = {
            "replicas": 1 + i % 4,
            "roles": ["worker"],
            "hardware": {"cpu": 4 + i % 8, "memory": f"{16 + i % 16}Gi", "storage": "50Gi"},
            "placement": {"region": "eu-west-1", "zones": ["eu-west-1a", "eu-west-1b"], "jurisdiction": "EU"},
            "cores": ["coder" if i % 2 else "researcher"],
        }
    return {
        "apiVersion": "pyagent.dev/v1alpha1",
        "kind": "Swarm",
        "metadata": {"name": "bench"},
        "image": {"ref": f"ghcr.io/pyagent/pyagent-node@sha256:{DIGEST}"},
        "nodes": nodes,
        "cores": {
            "coder": {"tools": [{"name": "git", "command": ["mcp-server-git"]}]},
            "researcher": {"tools": [{"name": "search", "transport": "http", "port": 8931}]},
        },
        "memory": {"kv": {"capacity": {"blocks": 64}}},
        "environments": {"dev": {"overrides": {"nodes": {"control": {"replicas": 3}}}}, "prod": {}},
    }


def generate_spec(pools: int) -> tuple[dict[str, Any], str]:
    try:
        from benchmarks.specgen import generate_spec as lead_generator
    except ImportError:
        return _local_generate_spec(pools), "benchmarks/cue_bench.py (specgen.py not found)"
    return lead_generator(pools), "benchmarks/specgen.py"


def write_specs(spec: dict[str, Any], root: Path) -> tuple[Path, Path]:
    vendored = root / "cue.mod" / "pkg" / "pyagent.dev" / "swarm"
    vendored.mkdir(parents=True)
    (vendored / "swarm.cue").write_text(schema_text())
    (root / "cue.mod" / "module.cue").write_text('module: "bench.example@v0"\nlanguage: version: "v0.12.0"\n')
    spec_dir = root / "bench"
    spec_dir.mkdir()
    for extra in ("scenarios",):  # files a generated spec may name
        (spec_dir / extra).mkdir()
    yaml_path = spec_dir / "swarm.yaml"
    yaml_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    cue_path = spec_dir / "swarm.cue"
    body = ",\n".join(f"\t{json.dumps(k)}: {json.dumps(v, indent=1)}" for k, v in spec.items())
    cue_path.write_text(f'package bench\n\nimport "pyagent.dev/swarm"\n\nswarm.#Swarm & {{\n{body}\n}}\n')
    return yaml_path, cue_path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_seconds(run: Callable[[], None], runs: int) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds (of the child processes) of `runs` runs."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _children_cpu()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def command(
    args: list[str], cwd: Path, stdin: str | None = None, extra_env: dict[str, str] | None = None
) -> Callable[[], None]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}

    def run() -> None:
        done = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cue = find_cue()
    cuepos = find_cuepos(cue) if cue else None
    if cue is None or cuepos is None:
        print("cue/cuepos not found: run .ci/install-cue.sh and put .tools/bin on PATH", file=sys.stderr)
        return 2
    spec, source = generate_spec(args.pools)
    with tempfile.TemporaryDirectory(prefix="cue-bench-") as tmp:
        root = Path(tmp)
        yaml_path, cue_path = write_specs(spec, root)
        spec_dir = cue_path.parent
        out = root / "out"
        py = sys.executable
        rows = [
            ("cue export --out json (alone)", command([cue, "export", "--out", "json", "swarm.cue"], spec_dir)),
            ("cuepos (positions, alone)", command([cuepos, "-schema", "-", "./swarm.cue"], spec_dir, schema_text())),
            (
                "cuepos, GOGC=400 (as pyagent runs it)",
                command([cuepos, "-schema", "-", "./swarm.cue"], spec_dir, schema_text(), {"GOGC": "400"}),
            ),
            (
                "pyagent compile swarm.cue",
                command([py, "-m", "pyagent_compile", "compile", str(cue_path), "--out", str(out / "cue")], root),
            ),
            (
                "pyagent compile swarm.yaml",
                command([py, "-m", "pyagent_compile", "compile", str(yaml_path), "--out", str(out / "yaml")], root),
            ),
        ]
        command([py, "-m", "pyagent_compile", "compile", str(cue_path), "--out", str(out / "warm")], root)()
        shutil.rmtree(out / "warm")
        figures = [(name, median_seconds(run, args.runs)) for name, run in rows]
    yaml_wall, yaml_cpu = figures[-1][1]
    print(f"{args.pools} pools (spec from {source}), median of {args.runs} runs, cue {cue}")
    print(f"{'step':<38} {'wall s':>8} {'x yaml':>7} {'cpu s':>8} {'x yaml':>7}")
    for name, (wall, cpu) in figures:
        print(f"{name:<38} {wall:>8.3f} {wall / yaml_wall:>7.2f} {cpu:>8.3f} {cpu / yaml_cpu:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
