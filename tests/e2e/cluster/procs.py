"""Starting the cluster's processes, waiting for them to be healthy, and stopping them by their saved pid."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.cluster.layout import Paths

POLL = 0.25


class PartFailed(Exception):
    """A part of the cluster did not start or is not healthy: one line naming it and its log."""


PR_SET_PDEATHSIG = 1  # prctl(2)


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends it SIGTERM when the process that started it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(
    paths: Paths, part: str, argv: list[str], env: dict[str, str] | None = None, die_with_parent: bool = False
) -> subprocess.Popen[bytes]:
    """Starts a part in its own process group, its pid saved for `down`. A part of a throwaway control
    plane (`die_with_parent`) is also stopped by the kernel if the test that started it is killed,
    when no `down` will run; the cluster's parts outlive `up` by design."""
    log = paths.log(part)
    with log.open("ab") as out:
        out.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=paths.state,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group: `down` signals it, a terminal's ^C does not
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        except OSError as e:
            raise PartFailed(f"{part}: cannot start {argv[0]}: {e.strerror}; log: {log}") from None
    (paths.pids / f"{part}.pid").write_text(f"{proc.pid}\n{argv[0]}\n")
    return proc


def wait_until(
    part: str, log: Path, ready: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> float:
    """Polls `ready` until it is true; fails as soon as `proc` exits. Returns the seconds it took."""
    start = time.monotonic()
    last = ""
    while True:
        if proc is not None and proc.poll() is not None:
            raise PartFailed(f"{part} exited with status {proc.returncode} before it was ready; log: {log}")
        try:
            if ready():
                return time.monotonic() - start
        except Exception as e:  # any failure of the probe means "not ready yet"
            last = f" (last probe: {type(e).__name__}: {str(e)[:160]})"
        if time.monotonic() - start > timeout:
            raise PartFailed(f"{part} was not ready after {timeout:.0f} s{last}; log: {log}")
        time.sleep(POLL)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def kill(pids: list[int], timeout: float = 30.0) -> list[int]:
    """SIGTERM, then SIGKILL what is left after `timeout`; returns the pids that would not die."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(POLL)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(POLL)
    return [p for p in pids if _alive(p)]


def saved_pid(paths: Paths, part: str) -> int | None:
    """The pid that `start` saved for `part`, if that process still runs the same program."""
    path = paths.pids / f"{part}.pid"
    if not path.exists():
        return None
    pid_text, exe = path.read_text().splitlines()[:2]
    pid = int(pid_text)
    argv = _cmdline(pid)
    return pid if argv and argv[0] == exe and _alive(pid) else None


def stop(paths: Paths, part: str, timeout: float = 30.0) -> list[int]:
    pid = saved_pid(paths, part)
    left = kill([pid], timeout) if pid is not None else []
    (paths.pids / f"{part}.pid").unlink(missing_ok=True)
    return left


def running(paths: Paths, part: str) -> bool:
    return saved_pid(paths, part) is not None


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains `text` (the containerd shims name our containerd's socket)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            argv = _cmdline(int(entry.name))
            if any(text in a for a in argv):
                out.append(int(entry.name))
    return out
