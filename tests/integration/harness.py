"""Real local swarms for the integration tests: compile a spec, start real pyagent-node
processes (through `pyagent up --local`, or inside network namespaces for partitions), and a
client that signs commands, follows the leader and records a history for the checker."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from pyagent_compile.plan.local import PORTS_PER_NODE, port_slot
from pyagent_compile.runtime.local import processes
from pyagent_compile.runtime.local.daemon import find_daemon
from pyagent_compile.runtime.local.stack import LocalStack, StackNode, load_stack
from pyagent_compile.runtime.local.swarm import agreed_leader, swarm_view
from pyagent_compile.runtime.nodeapi import node_pb2 as pb
from pyagent_compile.runtime.nodeapi.client import NodeClient, NotLeader, Signer, put_command
from tests.integration.lincheck import Operation

ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
apiVersion: pyagent.dev/v1alpha1
kind: Swarm
metadata:
  name: {name}
image:
  build: native
nodes:
  voters:
    replicas: {voters}
    roles: [voter]
    hardware:
      cpu: 1
      memory: 1Gi
consensus:
  electionTimeout: {{minMs: 300, maxMs: 600}}
  heartbeatMs: 100
  snapshot: {{everyEntries: {snapshot_every}}}
memory:
  kv:
    blockSize: 16
    bytesPerToken: 32Ki
    capacity:
      blocks: 256
environments:
  dev: {{}}
"""
# Slots this process holds, each by a Unix socket bound to an abstract name: machine-wide (in
# this network namespace), shared with every other test process (a second checkout's suite, the
# Rust tests' port picker) and let go when the process dies, even by SIGKILL. So two suites never
# start swarms on the same ports. A slot's ports must also be free: a running `make demo` holds its own.
_held_slots: dict[int, socket.socket] = {}
_lock = threading.Lock()


def _try_hold(slot: int) -> bool:
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        holder.bind(f"\0pyagent-test-slot-{slot}")
    except OSError:
        holder.close()
        return False
    _held_slots[slot] = holder
    return True


def daemon_or_reason() -> tuple[Path | None, str]:
    """The daemon binary (built with cargo if needed), or why there is none."""
    path, diag = find_daemon(build=True)
    if path is None:
        assert diag is not None
        return None, f"pyagent-node cannot be built here: {diag.message}\n{diag.help}"
    return path, ""


def unique_name(prefix: str, nodes: int) -> str:
    """A swarm name whose port slot no other test (in any process) holds and whose ports are free."""
    with _lock:
        for n in range(1000):
            name = f"{prefix}-{n}"
            slot = port_slot(name)
            ports = range(slot, slot + PORTS_PER_NODE * nodes)
            if slot in _held_slots or not all(processes.port_free(p) for p in ports):
                continue
            if _try_hold(slot):
                return name
    raise RuntimeError("no free port slot")


def release_name(name: str) -> None:
    """Give back the port slot of a swarm that is stopped (a run of more tests than slots, e.g.
    the nemesis with many seeds, ran out of them)."""
    with _lock:
        lock = _held_slots.pop(port_slot(name), None)
        if lock is not None:
            lock.close()


def pyagent(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyagent_compile", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def compile_local(tmp: Path, name: str, voters: int, snapshot_every: int = 10_000) -> LocalStack:
    """A local stack of `voters` nodes; `snapshot_every` entries between snapshots (the spec's
    default unless a test wants followers to be sent snapshots)."""
    return compile_spec(tmp, name, SPEC.format(name=name, voters=voters, snapshot_every=snapshot_every))


def compile_spec(tmp: Path, name: str, spec_text: str) -> LocalStack:
    """The local stack of swarm `name`, compiled from `spec_text` in `tmp`."""
    spec = tmp / "swarm.yaml"
    spec.write_text(spec_text, encoding="utf-8")
    done = pyagent("compile", str(spec), "--out", str(tmp / "stacks"), "--env", "local")
    assert done.returncode == 0, done.stderr
    stack, diag = load_stack(tmp / "stacks" / name / "local")
    assert stack is not None, diag
    return stack


def metrics(node: StackNode, address: str | None = None) -> dict[str, float]:
    """/metrics as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://{address or node.metrics}/metrics", timeout=2) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def metric_sum(values: dict[str, float], name: str, **labels: str) -> float:
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in values.items() if k.split("{")[0] == name and all(w in k for w in wanted))


@dataclass
class Cluster:
    """A running swarm. `grpc` maps node id -> client address (loopback or a namespace's)."""

    stack: LocalStack
    daemon: Path
    grpc_addresses: dict[int, str]
    metrics_addresses: dict[int, str]
    launcher: Callable[[StackNode], None]
    signer: Signer = field(init=False)
    clients: dict[int, NodeClient] = field(init=False)
    leader_hint: int = 0

    def __post_init__(self) -> None:
        first = self.stack.nodes[0]
        self.signer = Signer.from_file(self.stack.swarm, first.id, first.key_file)
        self.clients = {nid: NodeClient(addr) for nid, addr in self.grpc_addresses.items()}

    def node_by_id(self, node_id: int) -> StackNode:
        return next(n for n in self.stack.nodes if n.id == node_id)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def statuses(self, timeout: float = 0.5) -> dict[int, pb.StatusResponse | None]:
        result: dict[int, pb.StatusResponse | None] = {}
        for nid, client in self.clients.items():
            try:
                result[nid] = client.status(timeout=timeout) if processes.node_pid(self.node_by_id(nid)) else None
            except grpc.RpcError:
                result[nid] = None
        return result

    def wait_leader(self, timeout: float = 30.0, among: set[int] | None = None) -> int:
        """The leader a majority of voters agrees on (optionally: one of `among`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = self.statuses()
            leaders = [s for s in views.values() if s is not None and s.role == "Leader"]
            if leaders:
                top = max(leaders, key=lambda s: s.term)
                agree = sum(
                    1 for s in views.values() if s is not None and s.leader_id == top.node_id and s.term == top.term
                )
                if agree > len(self.stack.voters) // 2 and (among is None or top.node_id in among):
                    self.leader_hint = top.node_id
                    return top.node_id
            time.sleep(0.05)
        raise AssertionError(f"no leader within {timeout}s:\n{describe_statuses(self.statuses())}")

    def put(self, key: str, value: bytes, timeout: float = 15.0) -> pb.CommandResult:
        """Put through the leader, following redirects, until acknowledged (test set-up only:
        retrying may apply a write twice, so histories use `attempt_put`)."""
        deadline = time.monotonic() + timeout
        command = put_command(key, value)
        while True:
            target = self.leader_hint or self.stack.nodes[0].id
            try:
                return self.clients[target].submit(self.signer.sign(command), timeout=3.0)
            except NotLeader as redirect:
                self.leader_hint = redirect.leader_id
            except grpc.RpcError:
                self.leader_hint = 0
            if time.monotonic() > deadline:
                raise AssertionError(f"put {key} not acknowledged within {timeout}s")
            if not self.leader_hint:
                with contextlib.suppress(AssertionError):
                    self.wait_leader(timeout=max(0.1, deadline - time.monotonic()))

    def get(self, node_id: int, key: str, stale: bool = False) -> pb.GetResponse:
        return self.clients[node_id].get(key, stale=stale)

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        pid = processes.node_pid(self.node_by_id(node_id))
        assert pid is not None, f"node {node_id} is not running"
        os.kill(pid, sig)
        # Generous: a process blocked in an fsync on a loaded disk dies only when it returns.
        # Going on while it lives would start a second process on its ports (which then fails
        # to bind) or, for the disk nemesis, damage files under a live writer.
        # node_pid() stops naming the process once its command line is gone, which the kernel
        # drops before it closes the process's sockets (and a zombie leader may still have
        # threads closing them): wait until it is reaped, so that a restart can bind its ports.
        deadline = time.monotonic() + 60
        while processes.node_pid(self.node_by_id(node_id)) is not None or processes._proc_state(pid) not in (
            None,
            "X",
        ):
            assert time.monotonic() < deadline, f"node {node_id} (pid {pid}) still runs 60 s after signal {sig}"
            processes._reap(pid)
            time.sleep(0.01)

    def restart(self, node_id: int) -> None:
        self.launcher(self.node_by_id(node_id))

    def pause(self, node_id: int) -> None:
        """SIGSTOP the node's daemon (not the sandboxed commands it started: they run on)."""
        pid = processes.node_pid(self.node_by_id(node_id))
        assert pid is not None, f"node {node_id} is not running"
        os.kill(pid, signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        pid = processes.node_pid(self.node_by_id(node_id))
        if pid is not None:
            os.kill(pid, signal.SIGCONT)

    def wait_applied(self, index: int, nodes: list[int] | None = None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        wanted = nodes or list(self.clients)
        while time.monotonic() < deadline:
            views = self.statuses()
            if all(views[n] is not None and views[n].applied_index >= index for n in wanted):  # type: ignore[union-attr]
                return
            time.sleep(0.05)
        views = self.statuses()
        lagging = [n for n in wanted if views[n] is None or views[n].applied_index < index]  # type: ignore[union-attr]
        logs = {n: self.node_by_id(n).log_file for n in lagging}
        tails = "".join(f"\n--- node {n}: {path}\n{log_tail(path)}" for n, path in logs.items())
        raise AssertionError(
            f"nodes {lagging} of {wanted} did not apply index {index} within {timeout}s:\n"
            f"{describe_statuses(views)}\n{self.replication_view(views)}{tails}"
        )

    def replication_view(self, views: dict[int, pb.StatusResponse | None]) -> str:
        """What each leader says it replicated to each follower (its /metrics)."""
        lines = []
        for nid, s in sorted(views.items()):
            if s is None or s.role != "Leader":
                continue
            try:
                values = metrics(self.node_by_id(nid), self.metrics_addresses[nid])
            except OSError as exc:
                lines.append(f"  leader {nid}: no /metrics ({exc})")
                continue
            name = "pyagent_raft_replication_matched_index"
            matched = {k.partition("{")[2].rstrip("}"): int(v) for k, v in values.items() if k.startswith(name)}
            lines.append(f"  leader {nid} replicated: {matched}")
        return "\n".join(lines)


def describe_statuses(views: dict[int, pb.StatusResponse | None]) -> str:
    """One line per node: what `wait_*` failures need to tell a stuck node from a lagging one."""
    lines = []
    for nid, s in sorted(views.items()):
        if s is None:
            lines.append(f"  node {nid}: no answer")
        else:
            lines.append(
                f"  node {nid}: {s.role} term={s.term} leader={s.leader_id} commit={s.commit_index}"
                f" applied={s.applied_index} last_log={s.last_log_index}"
            )
    return "\n".join(lines)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read: {exc})"
    return "\n".join(text.splitlines()[-lines:])


# -- histories --------------------------------------------------------------------------------
@dataclass
class History:
    ops: list[Operation] = field(default_factory=list)
    acked_unique: dict[str, bytes] = field(default_factory=dict)  # unique keys whose put was acknowledged
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: Operation) -> None:
        with self.lock:
            self.ops.append(op)


UNKNOWN = (
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.ABORTED,
)


def attempt_put(cluster: Cluster, history: History, client: int, key: str, value: str) -> bool:
    """One attempt, recorded: acknowledged (True), definitely not applied, or unknown (ret=inf)."""
    target = cluster.leader_hint or random.choice(sorted(cluster.clients))
    command = cluster.signer.sign(put_command(key, value.encode()))
    call = time.monotonic()
    try:
        result = cluster.clients[target].submit(command, timeout=2.0)
    except NotLeader as redirect:
        cluster.leader_hint = redirect.leader_id
        return False  # a follower refuses before proposing: nothing was applied
    except grpc.RpcError as error:
        code: Any = error
        if code.code() in UNKNOWN:
            history.add(Operation(client, call, float("inf"), "put", key, value))
            cluster.leader_hint = 0
            return False
        raise
    ret = time.monotonic()
    if result.applied:
        history.add(Operation(client, call, ret, "put", key, value))
        return True
    return False


def attempt_get(cluster: Cluster, history: History, client: int, key: str) -> None:
    target = cluster.leader_hint or random.choice(sorted(cluster.clients))
    call = time.monotonic()
    try:
        response = cluster.clients[target].get(key, timeout=2.0)
    except NotLeader as redirect:
        cluster.leader_hint = redirect.leader_id
        return
    except grpc.RpcError:
        cluster.leader_hint = 0
        return  # an unanswered read tells nothing
    ret = time.monotonic()
    history.add(Operation(client, call, ret, "get", key, response.value.decode() if response.found else None))


def run_clients(
    cluster: Cluster,
    history: History,
    stop: threading.Event,
    clients: int,
    registers: int,
    seed: int,
    bulk_bytes: int = 0,
) -> list[threading.Thread]:
    """`clients` threads mixing unique writes, register writes and register reads; with
    `bulk_bytes`, one more writing unique keys of that size about 20 times a second, so that a
    follower coming back is megabytes behind (replication in bounded batches)."""

    def bulk(cid: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key = f"b{n}"
            value = f"{n:08d}".ljust(bulk_bytes, "x")
            if attempt_put(cluster, history, cid, key, value):
                with history.lock:
                    history.acked_unique[key] = value.encode()
            stop.wait(0.05)

    def client(cid: int) -> None:
        rng = random.Random(seed * 1000 + cid)
        n = 0
        while not stop.is_set():
            n += 1
            roll = rng.random()
            if roll < 0.3:  # a unique key: "every acknowledged write is present" is checked on these
                key, value = f"u{cid}-{n}", f"{cid}-{n}"
                if attempt_put(cluster, history, cid, key, value):
                    with history.lock:
                        history.acked_unique[key] = value.encode()
            elif roll < 0.65:
                attempt_put(cluster, history, cid, f"r{rng.randrange(registers)}", f"{cid}-{n}")
            else:
                attempt_get(cluster, history, cid, f"r{rng.randrange(registers)}")

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    if bulk_bytes:
        threads.append(threading.Thread(target=bulk, args=(clients,), daemon=True))
    for t in threads:
        t.start()
    return threads


def acked_count(history: History) -> int:
    with history.lock:
        return sum(1 for op in history.ops if op.kind == "put" and op.ret != float("inf"))


def free_port() -> int:
    """A loopback port no one listens on now (whoever binds it next must retry if it is taken)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# -- launching --------------------------------------------------------------------------------
def pyagent_up(stack: LocalStack, daemon: Path, timeout: float = 60) -> None:
    """`pyagent up --local`, as a user runs it: starts the nodes that are down (all of them the
    first time; after a crash, only the dead ones, which rejoin with their data)."""
    env = dict(os.environ, PYAGENT_NODE_BIN=str(daemon))
    done = subprocess.run(
        [sys.executable, "-m", "pyagent_compile", "up", "--local", str(stack.folder), "--timeout", str(timeout)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=timeout + 60,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"pyagent up failed:\n{done.stdout}\n{done.stderr}"


def up_local(stack: LocalStack, daemon: Path, timeout: float = 60) -> Cluster:
    """Start through the real CLI, as a user does."""
    pyagent_up(stack, daemon, timeout)

    def relaunch(node: StackNode) -> None:
        processes.start_node(stack, node, daemon)

    return Cluster(stack, daemon, {n.id: n.grpc for n in stack.nodes}, {n.id: n.metrics for n in stack.nodes}, relaunch)


@contextlib.contextmanager
def running(stack: LocalStack, daemon: Path) -> Iterator[Cluster]:
    """The swarm of `stack` up for the duration of a `with` block, then down and purged."""
    cluster = up_local(stack, daemon)
    try:
        yield cluster
    finally:
        cluster.close()
        down_local(stack)


def down_local(stack: LocalStack) -> subprocess.CompletedProcess[str]:
    return pyagent("down", str(stack.folder), "--timeout", "5", "--purge")


# -- network namespaces -----------------------------------------------------------------------
def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


def netns_reason() -> str:
    """'' when this process can create network namespaces, veths and bridges; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (partition tests create their own with `ip netns`)"
    probe = f"pa-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("link", "add", f"pp{os.getpid() % 100000}", "type", "bridge")
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cannot create network namespaces or bridges here: {exc}"
    finally:
        _ip("link", "del", f"pp{os.getpid() % 100000}", check=False)
        _ip("netns", "del", probe, check=False)
    return ""


@dataclass
class Netns:
    """Each node in its own namespace with two interfaces: `data` (Raft, on bridge `major` or
    `minor`, so moving a node's link between bridges partitions it) and `ctl` (the client API,
    on a bridge the test process reaches). Nothing touches the host's own interfaces."""

    tag: str
    nodes: list[int]
    data_net: str = ""
    ctl_net: str = ""

    def __post_init__(self) -> None:
        digest = int(hashlib.sha256(self.tag.encode()).hexdigest(), 16)
        self.data_net = f"10.{200 + digest % 50}.{digest % 200}"
        self.ctl_net = f"10.{200 + digest % 50}.{200 + digest % 50}"
        self._digest = digest

    def _free_ctl_net(self) -> str:
        """The first /24 from the tag's on that no host interface is in: `ctl` bridges get a host
        address, so two test runs at once (other processes) must not share the subnet (data
        bridges have none, and namespaces keep their addresses to themselves)."""
        shown = _ip("-4", "-o", "addr", "show").stdout.split()
        taken = {word.partition("/")[0].rpartition(".")[0] for word in shown if word.count(".") == 3}
        for k in range(50):
            n = 200 + (self._digest + k) % 50
            if f"10.{n}.{n}" not in taken:
                return f"10.{n}.{n}"
        raise RuntimeError("no free 10.x.x.0/24 for a ctl bridge")

    def ns(self, nid: int) -> str:
        return f"pa-{self.tag}-{nid}"

    def data_ip(self, nid: int) -> str:
        return f"{self.data_net}.{nid}"

    def ctl_ip(self, nid: int) -> str:
        return f"{self.ctl_net}.{nid}"

    def _link(self, kind: str, nid: int) -> str:
        return f"{self.tag[:8]}{kind}{nid}"

    def _bridge(self, which: str) -> str:
        return f"{self.tag[:8]}{which}"

    def create(self) -> None:
        self.ctl_net = self._free_ctl_net()
        for which in ("maj", "min", "ctl"):
            _ip("link", "add", self._bridge(which), "type", "bridge")
            _ip("link", "set", self._bridge(which), "up")
        _ip("addr", "add", f"{self.ctl_net}.254/24", "dev", self._bridge("ctl"))
        for nid in self.nodes:
            ns = self.ns(nid)
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            for kind, inner, ip in (("d", "data0", self.data_ip(nid)), ("c", "ctl0", self.ctl_ip(nid))):
                host = self._link(kind, nid)
                _ip("link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns)
                _ip("link", "set", host, "master", self._bridge("maj" if kind == "d" else "ctl"))
                _ip("link", "set", host, "up")
                _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")

    def partition(self, minority: set[int]) -> None:
        for nid in self.nodes:
            _ip("link", "set", self._link("d", nid), "master", self._bridge("min" if nid in minority else "maj"))

    def heal(self) -> None:
        self.partition(set())

    def destroy(self) -> None:
        for nid in self.nodes:
            for kind in ("d", "c"):
                _ip("link", "del", self._link(kind, nid), check=False)  # deletes both ends of the veth
            _ip("netns", "del", self.ns(nid), check=False)
        for which in ("maj", "min", "ctl"):
            _ip("link", "del", self._bridge(which), check=False)


def up_netns(stack: LocalStack, daemon: Path, net: Netns, folder: Path, mdns: bool = False) -> Cluster:
    """Start every node in its namespace, from the rendered configs with addresses rewritten.
    `mdns`: the mesh finds its peers by mDNS alone (discovery mode mdns, no seeds)."""
    assert not processes.prepare(stack, daemon)
    folder.mkdir(parents=True, exist_ok=True)
    configs: dict[int, Path] = {}
    for node in stack.nodes:
        config = json.loads(node.config.read_text())
        ports = node.ports
        config["dataDir"] = str(node.data_dir)
        config["listen"] = {
            "raft": f"{net.data_ip(node.id)}:{ports['raft']}",
            "grpc": f"0.0.0.0:{ports['grpc']}",
            "metrics": f"0.0.0.0:{ports['metrics']}",
            "mesh": f"{net.data_ip(node.id)}:{ports['mesh']}",
        }
        config["discovery"]["seeds"] = [
            f"{net.data_ip(other.id)}:{other.ports['mesh']}" for other in stack.nodes if other.id != node.id
        ]
        if mdns:
            config["discovery"].update(mode="mdns", seeds=[])
        for member in config["membership"]["members"]:
            other = stack.nodes[member["nodeId"] - 1]
            member["raft"] = f"{net.data_ip(other.id)}:{other.ports['raft']}"
            member["grpc"] = f"{net.ctl_ip(other.id)}:{other.ports['grpc']}"
        path = folder / f"{node.name}.json"
        path.write_text(json.dumps(config, indent=2))
        configs[node.id] = path
    # members.json (with the public keys) overrides the configs' members: rewrite it as well.
    members = json.loads(stack.members_file.read_text())
    for member in members["members"]:
        other = stack.nodes[member["nodeId"] - 1]
        member["raft"] = f"{net.data_ip(other.id)}:{other.ports['raft']}"
        member["grpc"] = f"{net.ctl_ip(other.id)}:{other.ports['grpc']}"
    stack_members = folder / "members.json"
    stack_members.write_text(json.dumps(members, indent=2))
    stack_members.chmod(0o600)

    def launch(node: StackNode) -> None:
        fd = os.open(node.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    net.ns(node.id),
                    str(daemon),
                    "run",
                    "--config",
                    str(configs[node.id]),
                    "--members",
                    str(stack_members),
                ],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                umask=processes.PRIVATE_UMASK,
            )
        finally:
            os.close(fd)
        node.pid_file.write_text(f"{process.pid}\n")

    # node_pid() checks that the pid's command line names the node's config: point it at ours.
    rewritten = LocalStack(
        stack.folder,
        stack.swarm,
        tuple(StackNode(n.entry, configs[n.id], n.data_dir) for n in stack.nodes),
    )
    for node in rewritten.nodes:
        launch(node)
    return Cluster(
        rewritten,
        daemon,
        {n.id: f"{net.ctl_ip(n.id)}:{n.ports['grpc']}" for n in rewritten.nodes},
        {n.id: f"{net.ctl_ip(n.id)}:{n.ports['metrics']}" for n in rewritten.nodes},
        launch,
    )


def stop_all(cluster: Cluster) -> None:
    cluster.close()
    processes.stop_nodes(cluster.stack.nodes, timeout=5.0)


__all__ = ["agreed_leader", "swarm_view"]
