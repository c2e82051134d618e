"""pyagent's Raft (3 pyagent-node processes) against etcd (3 members), side by side.

    python benchmarks/raft.py                   # both, default sizes
    python benchmarks/raft.py --quick           # smaller counts (a smoke run)
    python benchmarks/raft.py --rounds 9        # more alternating rounds per workload (default 5)
    python benchmarks/raft.py --client python   # drive both with the Python grpc.aio client

Same machine, same run, loopback, fsync on both (etcd's default; pyagent-node fsyncs every
batch before acknowledging), values of 256 B. Both clusters run for the whole benchmark and each
workload is measured in rounds that alternate between them (pyagent then etcd, then etcd then
pyagent, ...), so a drift in the machine's speed (other processes, the disk's flush latency)
falls on both sides alike. Each figure is the median of the rounds with its range [min-max]; a
ratio is taken round by round (the two sides of one round ran back to back) and reported as the
median [min-max] of those. The load average is printed and recorded with the figures, and each
run is recorded as JSON under benchmarks/results/.

Both are driven the same way, against the leader: one client process per round, one gRPC
channel, N workers each issuing one request at a time. By default that client is `raft-load`
(native/crates/raft-load, Rust and tonic, built by this script), a compiled client as etcd's own
`benchmark` tool is, so that the figures are the servers'; `--client python` uses grpc.aio from
this process instead, which spends ~0.33 ms of CPU per request on the same two cores and about
half of a single write's latency. pyagent's client also signs each command with Ed25519 (part of
its protocol); etcd's requests are unauthenticated. Reads are linearizable on both (etcd Range
with serializable=false; pyagent Get with stale=false, ReadIndex through the leader).

etcd comes from Debian (`apt-get install etcd-server`, 3.4); this script installs it with
apt-get when it is missing and it runs as root. Figures and the command are recorded in
docs/local-and-raft.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from pyagent_compile.runtime.local.stack import StackNode, load_stack  # noqa: E402
from pyagent_compile.runtime.nodeapi import node_pb2 as pb  # noqa: E402
from pyagent_compile.runtime.nodeapi.client import Signer, put_command  # noqa: E402

VALUE = b"v" * 256
ETCD_BASE = 31000  # below the ephemeral range, away from the local target's 20000-29999
SPEC = """\
apiVersion: pyagent.dev/v1alpha1
kind: Swarm
metadata:
  name: bench-raft
nodes:
  voters:
    replicas: 3
    roles: [voter]
    hardware: {cpu: 1, memory: 1Gi}
consensus:  # etcd's defaults (--heartbeat-interval 100, --election-timeout 1000), as its side runs
  heartbeatMs: 100
  electionTimeout: {minMs: 1000, maxMs: 2000}
memory:
  kv:
    blockSize: 16
    bytesPerToken: 32Ki
    capacity:
      blocks: 256
environments:
  dev: {}
"""


# -- a minimal etcd v3 client: the two requests we need, protobuf-encoded by hand -------------
def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    length = len(data)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(varint) + data


def etcd_put(key: bytes, value: bytes) -> bytes:
    return _field(1, key) + _field(2, value)  # etcdserverpb.PutRequest{key, value}


def etcd_range(key: bytes) -> bytes:
    return _field(1, key)  # etcdserverpb.RangeRequest{key}; serializable=false: linearizable


# -- measurement ------------------------------------------------------------------------------
@dataclass
class Figures:
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    retries: int = 0


@dataclass
class Sample:
    """One round of one workload on one side: every operation's latency, and the wall time."""

    latencies: list[float]
    elapsed: float
    retries: int


RETRIABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def measure(op: Callable[[int], Awaitable[None]], clients: int, total: int) -> Sample:
    """`total` operations by `clients` coroutines; an operation refused as UNAVAILABLE or timed out
    is retried (up to 5 times) and its latency includes the retries, which are counted."""
    latencies: list[float] = []
    counter = iter(range(total))
    retries = 0

    async def worker() -> None:
        nonlocal retries
        for i in counter:
            start = time.perf_counter()
            for attempt in range(6):
                try:
                    await op(i)
                    break
                except grpc.aio.AioRpcError as error:
                    if error.code() not in RETRIABLE or attempt == 5:
                        raise
                    retries += 1
            latencies.append(time.perf_counter() - start)

    # The client's own garbage collector is off while measuring (both sides): a full collection
    # stalls every in-flight request at once, and with 64 clients that alone decided the p99.
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return Sample(latencies, elapsed, retries)


def figures(sample: Sample) -> Figures:
    """One round's throughput, p50 and p99."""
    ordered = sorted(sample.latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return Figures(len(ordered) / sample.elapsed, statistics.median(ordered) * 1000, p99 * 1000, sample.retries)


@dataclass
class Rounds:
    """One workload on one side: the figures of each round, in round order."""

    rounds: list[Figures]

    def values(self, metric: str) -> list[float]:
        return [float(getattr(f, metric)) for f in self.rounds]

    def median(self, metric: str) -> float:
        return statistics.median(self.values(metric))

    def cell(self, metric: str) -> str:
        v = self.values(metric)
        return f"{statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}]"

    @property
    def retries(self) -> int:
        return sum(f.retries for f in self.rounds)


def ratios(ours: Rounds, theirs: Rounds, metric: str) -> list[float]:
    """pyagent / etcd, round by round."""
    return [a / b for a, b in zip(ours.values(metric), theirs.values(metric), strict=True) if b]


@dataclass
class Side:
    """One system under test: `run(op, clients, total)` measures one round of `total` writes
    ("put") or linearizable reads ("get") of keys `k{i % 1000}` by `clients` workers."""

    name: str
    run: Callable[[str, int, int], Awaitable[Sample]]


@dataclass
class Ops:
    """One system's requests for the Python client: a write and a linearizable read of `k{i % 1000}`."""

    name: str
    put: Callable[[int], Awaitable[None]]
    get: Callable[[int], Awaitable[None]]

    def side(self) -> Side:
        async def run(op: str, clients: int, total: int) -> Sample:
            return await measure(getattr(self, op), clients, total)

        return Side(self.name, run)


WORKLOADS = (
    ("write, 1 client", "put", 1, "single"),
    ("write, 64 clients", "put", 64, "many"),
    ("linearizable read, 64 clients", "get", 64, "reads"),
)


async def alternate(sides: tuple[Side, Side], sizes: dict[str, int], rounds: int) -> dict[str, dict[str, Rounds]]:
    """Each workload in `rounds` rounds; the side that goes first alternates from round to round."""
    results: dict[str, dict[str, Rounds]] = {side.name: {} for side in sides}
    for workload_name, op, clients, size in WORKLOADS:
        samples: dict[str, list[Sample]] = {side.name: [] for side in sides}
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                samples[side.name].append(await side.run(op, clients, sizes[size]))
        for name, taken in samples.items():
            results[name][workload_name] = Rounds([figures(t) for t in taken])
    return results


# -- etcd -------------------------------------------------------------------------------------
def ensure_etcd() -> str:
    etcd = shutil.which("etcd")
    if etcd:
        return etcd
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing etcd-server with apt-get ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "etcd-server"], check=True, stdout=subprocess.DEVNULL)
        etcd = shutil.which("etcd")
    if not etcd:
        raise SystemExit("etcd not found: apt-get install etcd-server (Debian ships 3.4)")
    return etcd


def start_etcd(etcd: str, folder: Path) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    members = [(f"m{i}", ETCD_BASE + 10 * i, ETCD_BASE + 10 * i + 1) for i in range(3)]
    cluster = ",".join(f"{n}=http://127.0.0.1:{peer}" for n, _, peer in members)
    procs = []
    for name, client, peer in members:
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed by the process's end
        procs.append(
            subprocess.Popen(
                [
                    etcd,
                    "--name",
                    name,
                    "--data-dir",
                    str(folder / name),
                    "--listen-client-urls",
                    f"http://127.0.0.1:{client}",
                    "--advertise-client-urls",
                    f"http://127.0.0.1:{client}",
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{peer}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{peer}",
                    "--initial-cluster",
                    cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "bench",
                    "--log-level",
                    "warn",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        )
    return procs, [f"127.0.0.1:{client}" for _, client, _ in members]


def etcd_leader(clients: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for address in clients:
            try:
                with urllib.request.urlopen(f"http://{address}/v3/maintenance/status", data=b"{}", timeout=1) as r:
                    status = json.loads(r.read())
                if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                    return address
            except OSError:
                pass
        time.sleep(0.1)
    raise SystemExit("etcd elected no leader")


@contextlib.asynccontextmanager
async def etcd_ops(leader: str) -> AsyncIterator[Ops]:
    async with grpc.aio.insecure_channel(leader) as channel:
        put_rpc = channel.unary_unary("/etcdserverpb.KV/Put")
        range_rpc = channel.unary_unary("/etcdserverpb.KV/Range")

        async def put(i: int) -> None:
            await put_rpc(etcd_put(f"k{i % 1000}".encode(), VALUE), timeout=10)

        async def get(i: int) -> None:
            await range_rpc(etcd_range(f"k{i % 1000}".encode()), timeout=10)

        yield Ops("etcd", put, get)


# -- pyagent ----------------------------------------------------------------------------------
def pyagent_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyagent_compile", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


@contextlib.asynccontextmanager
async def pyagent_ops(stack_folder: Path) -> AsyncIterator[Ops]:
    swarm, leader = pyagent_leader(stack_folder)
    signer = Signer.from_file(swarm, leader.id, leader.key_file)
    async with grpc.aio.insecure_channel(leader.grpc) as channel:
        submit = channel.unary_unary(
            "/pyagent.node.v1.Node/Submit",
            request_serializer=pb.SignedCommand.SerializeToString,
            response_deserializer=pb.CommandResult.FromString,
        )
        read = channel.unary_unary(
            "/pyagent.node.v1.Node/Get",
            request_serializer=pb.GetRequest.SerializeToString,
            response_deserializer=pb.GetResponse.FromString,
        )

        async def put(i: int) -> None:
            result = await submit(signer.sign(put_command(f"k{i % 1000}", VALUE)), timeout=10)
            assert result.applied, result

        async def get(i: int) -> None:
            await read(pb.GetRequest(key=f"k{i % 1000}"), timeout=10)

        yield Ops("pyagent", put, get)


def pyagent_leader(stack_folder: Path) -> tuple[str, StackNode]:
    stack, _ = load_stack(stack_folder)
    assert stack is not None
    done = pyagent_cli("status", str(stack_folder), "--format", "json")
    status = json.loads(done.stdout)
    return stack.swarm, stack.nodes[status["leader"] - 1]


async def run_both_python(
    stack_folder: Path, etcd_address: str, sizes: dict[str, int], rounds: int
) -> dict[str, dict[str, Rounds]]:
    async with pyagent_ops(stack_folder) as ours, etcd_ops(etcd_address) as theirs:
        for ops in (ours, theirs):
            await measure(ops.put, 8, 200)  # warm-up: connections, leader caches
        return await alternate((ours.side(), theirs.side()), sizes, rounds)


# -- the compiled client (native/crates/raft-load) --------------------------------------------
def load_side(binary: Path, name: str, target: list[str]) -> Side:
    """Rounds run by `raft-load` against `target` (its --system/--addr/... arguments); each run
    connects and warms up (100 writes) before it times anything."""

    async def run(op: str, clients: int, total: int) -> Sample:
        command = [str(binary), *target, "--op", op, "--clients", str(clients), "--total", str(total)]
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"raft-load against {name} failed (exit {proc.returncode}): {err.decode().strip()}")
        data = json.loads(out)
        return Sample(data["latencies"], data["elapsed"], data["retries"])

    return Side(name, run)


async def run_both_compiled(
    binary: Path, stack_folder: Path, etcd_address: str, sizes: dict[str, int], rounds: int
) -> dict[str, dict[str, Rounds]]:
    swarm, leader = pyagent_leader(stack_folder)
    signer = ["--swarm", swarm, "--signer", str(leader.id), "--key", str(leader.key_file)]
    ours = load_side(binary, "pyagent", ["--system", "pyagent", "--addr", leader.grpc, *signer])
    theirs = load_side(binary, "etcd", ["--system", "etcd", "--addr", etcd_address])
    return await alternate((ours, theirs), sizes, rounds)


def build_native() -> tuple[Path, Path]:
    """pyagent-node and raft-load, built (or found up to date) by cargo; $PYAGENT_NODE_BIN, when
    set, is the daemon instead."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise SystemExit("cargo not found: the benchmark builds pyagent-node and raft-load (install Rust)")
    print("building pyagent-node and raft-load (cargo build --release) ...", file=sys.stderr)
    built = subprocess.run(
        [cargo, "build", "--release", "--locked", "-p", "pyagent-node", "-p", "raft-load"],
        cwd=ROOT / "native",
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        raise SystemExit(f"cargo build failed in native/:\n{built.stderr[-3000:]}")
    release = ROOT / "native" / "target" / "host" / "release"
    daemon = Path(os.environ.get("PYAGENT_NODE_BIN") or release / "pyagent-node").resolve()
    return daemon, release / "raft-load"


def git_commit() -> str:
    """HEAD, with "-dirty" when the working tree differs from it."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, cwd=ROOT)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def record(document: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"raft-{document['utc']}.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per workload (default 5)")
    parser.add_argument(
        "--client",
        choices=("rust", "python"),
        default="rust",
        help="the client both sides are driven with: raft-load (default) or grpc.aio in this process",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sizes = (
        {"single": 200, "many": 2000, "reads": 2000} if args.quick else {"single": 3000, "many": 10000, "reads": 10000}
    )
    daemon, load = build_native()
    etcd = ensure_etcd()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    load_start = os.getloadavg()
    work = ROOT / ".bench-cache" / "raft"  # on the repository's disk, so fsync is real (not tmpfs)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spec = work / "swarm.yaml"
    spec.write_text(SPEC)
    assert pyagent_cli("compile", str(spec), "--env", "local", "--out", str(work / "stacks")).returncode == 0
    stack_folder = work / "stacks" / "bench-raft" / "local"
    env = dict(os.environ, PYAGENT_NODE_BIN=str(daemon))
    up = subprocess.run(
        [sys.executable, "-m", "pyagent_compile", "up", "--local", str(stack_folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if up.returncode != 0:
        raise SystemExit(f"pyagent up failed:\n{up.stdout}{up.stderr}")
    try:
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            procs, clients = start_etcd(etcd, Path(tmp))
            try:
                leader = etcd_leader(clients)
                if args.client == "rust":
                    results = asyncio.run(run_both_compiled(load, stack_folder, leader, sizes, args.rounds))
                else:
                    results = asyncio.run(run_both_python(stack_folder, leader, sizes, args.rounds))
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(timeout=30)
    finally:
        pyagent_cli("down", str(stack_folder), "--purge")

    load_end = os.getloadavg()
    version = subprocess.run([etcd, "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    client = "raft-load (Rust, tonic)" if args.client == "rust" else "Python grpc.aio"
    print(f"3 nodes on loopback, fsync on, 256 B values; {os.cpu_count()} CPUs; {version}")
    print(
        f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end (1 min); other work on the "
        "machine was not paused"
    )
    print(
        f"{args.rounds} alternating rounds per workload; per round and side: {sizes['single']} single-client "
        f"writes, {sizes['many']} writes and {sizes['reads']} reads by 64 clients; both sides driven by one "
        f"client, {client}, against the leader. pyagent: each write is a command signed with Ed25519 (its "
        "protocol), reads are ReadIndex through the leader; etcd: Put unauthenticated, Range with "
        "serializable=false. Both linearizable, both fsync before acknowledging."
    )
    print("figures: median [min-max] over the rounds; ratio = pyagent / etcd per round, median [min-max]")
    header = f"{'workload':32} {'':7} {'pyagent':>26} {'etcd':>26} {'ratio':>20}"
    print(header)
    print("-" * len(header))
    recorded: dict[str, Any] = {}
    for workload_name in results["pyagent"]:
        ours, theirs = results["pyagent"][workload_name], results["etcd"][workload_name]
        recorded[workload_name] = {}
        for i, (unit, metric) in enumerate((("ops/s", "ops_per_s"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"))):
            label = workload_name if i == 0 else ""
            r = ratios(ours, theirs, metric)
            ratio = f"{statistics.median(r):.2f} [{min(r):.2f}-{max(r):.2f}]"
            print(f"{label:32} {unit:7} {ours.cell(metric):>26} {theirs.cell(metric):>26} {ratio:>20}")
            recorded[workload_name][metric] = {
                "pyagent": ours.values(metric),
                "etcd": theirs.values(metric),
                "ratio": r,
                "median": {
                    "pyagent": ours.median(metric),
                    "etcd": theirs.median(metric),
                    "ratio": statistics.median(r),
                },
            }
        if ours.retries or theirs.retries:
            print(f"{'':32} {'retried':7} {ours.retries:26d} {theirs.retries:26d}")
        recorded[workload_name]["retries"] = {"pyagent": ours.retries, "etcd": theirs.retries}
    print("ratio above 1 is better for ops/s, worse for latency")
    path = record(
        {
            "benchmark": "raft",
            "utc": stamp,
            "commit": git_commit(),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {"cpus": os.cpu_count(), "load_avg_start": load_start, "load_avg_end": load_end},
            "etcd": version,
            "client": client,
            "rounds": args.rounds,
            "sizes": sizes,
            "workloads": recorded,
        }
    )
    print(f"recorded in {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
