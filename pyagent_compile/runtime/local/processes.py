"""Starting and stopping node processes: keys, members file, pid files, logs, signals.

Processes are detached (their own session, stdin closed, output to data/<node>/node.log), so
they outlive the `pyagent up` that started them. A pid file is trusted only while the process
it names is alive and is a pyagent-node started with that node's config (pids are reused).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyagent_compile.contracts.node_config import NodeConfig, StaticMembership
from pyagent_compile.diagnostics import Diagnostic, Severity
from pyagent_compile.runtime.local.stack import LocalStack, StackNode

LOG_TAIL_LINES = 12
# Everything a node writes (keys, Raft log, snapshots) is for its own user only.
PRIVATE_UMASK = 0o077


def _proc_state(pid: int) -> str | None:
    """The state letter from /proc/<pid>/stat, None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def node_pid(node: StackNode) -> int | None:
    """The pid of the node's live process, from its pid file; None if it is not running."""
    try:
        pid = int(node.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return None
    if str(node.config) not in _cmdline(pid):
        return None  # the pid was reused by an unrelated process
    return pid


def log_tail(node: StackNode, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = node.log_file.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE
    return True


def check_ports(stack: LocalStack, nodes: tuple[StackNode, ...]) -> list[Diagnostic]:
    """PA612 for each port of `nodes` (the ones about to start) that something listens on."""
    return [
        Diagnostic(
            "PA612",
            f"node {node.name}: {kind} port 127.0.0.1:{port} is in use by another process",
            help=f"find it with `ss -ltnp 'sport = :{port}'`; if it is this swarm, `pyagent down {stack.folder}`",
        )
        for node in nodes
        for kind, port in sorted(node.ports.items())
        if kind != "mesh" and not port_free(port)
    ]


def static_members(config: Path) -> list[dict[str, Any]]:
    """The member entries of a local node.json (raises pydantic's ValidationError on another)."""
    membership = NodeConfig.model_validate_json(config.read_text()).membership
    if not isinstance(membership, StaticMembership):
        raise ValueError(f"{config}: membership is not static")
    return [m.to_json() for m in membership.members]


def prepare(stack: LocalStack, daemon: Path) -> list[Diagnostic]:
    """Data dirs (0700), one key per node (`keygen`), and data/members.json with every public key."""
    stack.data_root.mkdir(mode=0o700, exist_ok=True)
    os.chmod(stack.data_root, 0o700)
    # The full member entries of the rendered config, each with the key keygen printed.
    rendered = {m["nodeId"]: m for m in static_members(stack.nodes[0].config)}
    members = []
    for node in stack.nodes:
        node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(node.data_dir, 0o700)
        done = subprocess.run(
            [str(daemon), "keygen", "--data-dir", str(node.data_dir)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            umask=PRIVATE_UMASK,
        )
        key = done.stdout.strip()
        if done.returncode != 0 or not key:
            return [
                Diagnostic(
                    "PA613",
                    f"node {node.name}: `pyagent-node keygen` failed (exit {done.returncode})",
                    help=(done.stderr.strip() or done.stdout.strip())[-2000:],
                )
            ]
        members.append({**rendered[node.id], "publicKey": key})
    text = json.dumps({"members": members}, indent=2, sort_keys=True) + "\n"
    stack.members_file.write_text(text, encoding="utf-8")
    os.chmod(stack.members_file, 0o600)
    return []


def start_node(stack: LocalStack, node: StackNode, daemon: Path) -> subprocess.Popen[bytes]:
    fd = os.open(node.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [str(daemon), "run", "--config", str(node.config), "--members", str(stack.members_file)],
            cwd=stack.folder,
            umask=PRIVATE_UMASK,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
        )
    finally:
        os.close(fd)
    node.pid_file.write_text(f"{process.pid}\n", encoding="ascii")
    os.chmod(node.pid_file, 0o600)
    return process


@dataclass
class StopResult:
    node: str
    pid: int | None
    killed: bool = False


def _wait_gone(pids: dict[str, int], deadline: float) -> None:
    while pids and time.monotonic() < deadline:
        for name, pid in list(pids.items()):
            state = _proc_state(pid)
            if state is None or state in ("Z", "X"):
                _reap(pid)
                del pids[name]
        if pids:
            time.sleep(0.02)  # no portable way to await an unrelated process's exit


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child when the same process started it (tests)


def stop_nodes(
    nodes: tuple[StackNode, ...], timeout: float = 10.0, report: Callable[[str], None] = lambda _: None
) -> tuple[list[StopResult], list[Diagnostic]]:
    """SIGTERM every running node, then SIGKILL those still alive after `timeout` seconds."""
    results = [StopResult(n.name, node_pid(n)) for n in nodes]
    running = {r.node: r.pid for r in results if r.pid is not None}
    for pid in running.values():
        os.kill(pid, signal.SIGTERM)
    report(f"stopping {len(running)} node(s)")
    left = dict(running)
    _wait_gone(left, time.monotonic() + timeout)
    diags = []
    for name, pid in left.items():
        os.kill(pid, signal.SIGKILL)
        next(r for r in results if r.node == name).killed = True
        diags.append(
            Diagnostic(
                "PA618",
                f"node {name} (pid {pid}) did not stop within {timeout:g}s of SIGTERM; sent SIGKILL",
                severity=Severity.WARNING,
            )
        )
    _wait_gone(dict(left), time.monotonic() + 5.0)
    for node in nodes:
        if node_pid(node) is None:
            node.pid_file.unlink(missing_ok=True)
    return results, diags
