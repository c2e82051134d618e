"""Reading the tools lock that sits beside a spec (see model/tools_lock.py).

No lock is not a problem: checking `mcp` steps against their servers is opt-in, by running
`pyagent tools lock` once. A lock that cannot be read, is not the shape pyagent writes, or whose
recorded hashes do not match its schemas (edited by hand) is PA336: checking steps against it
would be checking against something no server said.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import ValidationError

from pyagent_compile.diagnostics import Diagnostic, Label, Span
from pyagent_compile.model.tools_lock import LOCK_SUFFIX, PACKAGE_LOCK_NAME, ToolsLock, canonical_sha256

MAX_LOCK_BYTES = 32 * 1024 * 1024


def lock_path(spec: Path) -> Path:
    """`dir/swarm.yaml` -> `dir/swarm.tools.lock.json`; a CUE package folder -> `folder/tools.lock.json`."""
    if spec.is_dir():
        return spec / PACKAGE_LOCK_NAME
    return spec.with_name(spec.stem + LOCK_SUFFIX)


def lock_display(spec_display: str, spec: Path) -> str:
    """The lock's path as users see it, next to the spec's display path."""
    folder, sep, _ = spec_display.rpartition("/")
    name = lock_path(spec).name
    if spec.is_dir():
        return f"{spec_display.rstrip('/')}/{name}"
    return f"{folder}{sep}{name}"


def load_tools_lock(spec: Path, spec_display: str) -> tuple[ToolsLock | None, list[Diagnostic]]:
    path = lock_path(spec)
    display = lock_display(spec_display, spec)
    try:
        if not path.is_file():
            return None, []
        if path.stat().st_size > MAX_LOCK_BYTES:
            return None, [_invalid(display, "is larger than any tools lock (32 MiB)")]
        raw = path.read_bytes()
    except OSError as error:
        return None, [_invalid(display, f"cannot be read: {error.strerror or error}")]
    try:
        lock = ToolsLock.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as error:
        return None, [_invalid(display, f"is not valid JSON: {error}")]
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the top level"
        return None, [_invalid(display, f"is not a tools lock as pyagent writes it: {where}: {first['msg']}")]
    for server in lock.servers:
        for name, tool in server.tools.items():
            if canonical_sha256(tool.input_schema) != tool.input_schema_sha256:
                return None, [
                    _invalid(
                        display,
                        f"was edited by hand: the input schema of {server.core}.{server.tool} tool {name!r} "
                        "does not match its recorded hash",
                    )
                ]
    return lock, []


def _invalid(display: str, what: str) -> Diagnostic:
    return Diagnostic(
        "PA336",
        f"the tools lock {display} {what}",
        primary=Label(Span(display, 1, 1)),
        help=f"regenerate it with `pyagent tools lock` (or delete {display} to stop checking mcp steps)",
    )
