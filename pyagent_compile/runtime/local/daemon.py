"""Finding (or building) the node daemon binary."""

from __future__ import annotations

import collections
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pyagent_compile import resources
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.project import find_project

ENV_VAR = "PYAGENT_NODE_BIN"
# native/.cargo/config.toml applies when cargo runs inside native/: a build for this machine's CPU,
# in a target folder of its own.
RELEASE_BIN = Path("native/target/host/release/pyagent-node")
BUILD_COMMAND = ("cargo", "build", "--release", "--locked", "-p", "pyagent-node")
BUILD_HINT = "cd native && cargo build --release --locked -p pyagent-node"


def _roots() -> list[Path]:
    """Repository roots to look in: the project around the working folder, then pyagent's own."""
    roots = []
    project = find_project(Path.cwd())
    if project is not None:
        roots.append(project.parent)
    checkout = resources.source_checkout()
    if checkout is not None:
        roots.append(checkout)
    return list(dict.fromkeys(r.resolve() for r in roots))


def find_daemon(
    build: bool = True, report: Callable[[str], None] = lambda _: None
) -> tuple[Path | None, Diagnostic | None]:
    """$PYAGENT_NODE_BIN, else native/target/host/release/pyagent-node, else `cargo build` it."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        # Absolute, because the nodes start with their stack folder as working directory.
        path = Path(explicit).resolve()
        if path.is_file() and os.access(path, os.X_OK):
            return path, None
        return None, Diagnostic(
            "PA611",
            f"${ENV_VAR} is {explicit!r}, which is not an executable file",
            help=f"point ${ENV_VAR} at a pyagent-node binary, or unset it",
        )
    roots = _roots()
    source = next((r for r in roots if (r / "native" / "Cargo.toml").is_file()), None)
    cargo = shutil.which("cargo")
    if source is not None and cargo is not None and build:
        # In a checkout, cargo decides whether the binary is current (a no-op build takes well
        # under a second): a binary left from older sources would read node.json of another
        # shape than the compiler now writes.
        return _build(cargo, source, report)
    for root in roots:
        if (root / RELEASE_BIN).is_file():
            return root / RELEASE_BIN, None
    if source is None or not build:
        return None, Diagnostic(
            "PA611",
            "pyagent-node not found: set $PYAGENT_NODE_BIN or build it in a pyagent checkout",
            help=BUILD_HINT,
        )
    return None, Diagnostic(
        "PA611",
        "pyagent-node is not built and cargo is not installed",
        help="install Rust (https://rustup.rs), or set $PYAGENT_NODE_BIN",
    )


def _build(cargo: str, source: Path, report: Callable[[str], None]) -> tuple[Path | None, Diagnostic | None]:
    if (source / RELEASE_BIN).is_file():
        report = _when_compiling(report, "pyagent-node's sources changed: rebuilding it (cargo build --release)")
    else:
        report(f"building pyagent-node (cargo build --release; a few minutes the first time) in {source}")
    code, tail = run_build([cargo, *BUILD_COMMAND[1:]], source / "native", report)
    if code != 0 or not (source / RELEASE_BIN).is_file():
        where = f"in {source / 'native'}: {' '.join(BUILD_COMMAND)}"
        return None, Diagnostic("PA611", f"building pyagent-node failed (exit {code})", help=f"{where}\n{tail}")
    return source / RELEASE_BIN, None


def _when_compiling(report: Callable[[str], None], first: str) -> Callable[[str], None]:
    """A reporter that stays silent unless cargo compiles something (a no-op build says only
    `Finished`), and then says `first` before the progress."""
    compiling = False

    def relay(line: str) -> None:
        nonlocal compiling
        if not compiling and "Compiling" in line:
            compiling = True
            report(first)
        if compiling:
            report(line)

    return relay


QUIET_SECONDS = 10.0
TAIL_LINES = 15


def run_build(command: list[str], cwd: Path, report: Callable[[str], None]) -> tuple[int, str]:
    """Runs cargo and passes its progress on as it comes: each crate it starts compiling, and a
    line every QUIET_SECONDS while it says nothing (the daemon's own crate compiles and links for
    a minute or more). Returns the exit code and the last lines of its output, for the error."""
    started = time.monotonic()
    lines: queue.Queue[str | None] = queue.Queue()
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace"
    ) as build:
        assert build.stderr is not None
        threading.Thread(target=_pump, args=(build.stderr, lines), daemon=True).start()
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        while True:
            try:
                line = lines.get(timeout=QUIET_SECONDS)
            except queue.Empty:
                report(f"  still building pyagent-node ({time.monotonic() - started:.0f} s)")
                continue
            if line is None:
                break
            tail.append(line)
            if line.lstrip().startswith(("Compiling", "Finished")):
                report(f"  {line.strip()}")
        code = build.wait()
    return code, "\n".join(tail)


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)
