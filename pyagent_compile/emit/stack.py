"""Stage 6: write a stack folder, or compare it (`--check`), without ever losing a user's file.

A stack folder carries `.pyagent-stack.json`, the list of files pyagent generated there with
their SHA-256. With it we can remove files a previous compile generated and this one does
not (a deleted pool), leave alone files the user added, and refuse to overwrite a file that
was edited by hand or that pyagent did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MARKER = ".pyagent-stack.json"


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass
class StackDiff:
    """What writing would change, by path relative to the stack folder."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def _marker_content(files: dict[str, bytes]) -> bytes:
    listing = {"generatedBy": "pyagent", "files": {p: _digest(c) for p, c in sorted(files.items())}}
    return (json.dumps(listing, indent=2, sort_keys=True) + "\n").encode()


def _read_marker(folder: Path) -> dict[str, str] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        files = data["files"]
        return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def compare(folder: Path, texts: dict[str, str]) -> StackDiff:
    files = {p: t.encode() for p, t in texts.items()}
    files[MARKER] = _marker_content(files)
    previous = _read_marker(folder) or {}
    diff = StackDiff()
    for rel, content in sorted(files.items()):
        current = _read(folder / rel)
        if current is None:
            diff.added.append(rel)
        elif current != content:
            diff.changed.append(rel)
            generated_before = rel in previous and previous[rel] == _digest(current)
            if rel != MARKER and not generated_before:
                diff.conflicts.append(rel)
    for rel in sorted(set(previous) - set(files)):
        current = _read(folder / rel)
        if current is not None:
            diff.removed.append(rel)
            if _digest(current) != previous[rel]:
                diff.conflicts.append(rel)
    return diff


def compare_orphan(folder: Path) -> StackDiff:
    """A stack folder whose environment is gone: every file pyagent generated there goes."""
    previous = _read_marker(folder) or {}
    diff = StackDiff()
    for rel in sorted(set(previous) | {MARKER}):
        current = _read(folder / rel)
        if current is None:
            continue
        diff.removed.append(rel)
        if rel != MARKER and _digest(current) != previous[rel]:
            diff.conflicts.append(rel)
    return diff


def orphan_stacks(swarm_folder: Path, current: set[str]) -> list[Path]:
    """Environment folders that pyagent generated and that the spec no longer declares."""
    if not swarm_folder.is_dir():
        return []
    return sorted(p for p in swarm_folder.iterdir() if p.name not in current and (p / MARKER).is_file())


def write(folder: Path, texts: dict[str, str], diff: StackDiff) -> None:
    """Apply `diff` (computed by `compare` with no conflicts, or with --force)."""
    files = {p: t.encode() for p, t in texts.items()}
    if texts or not diff.removed:
        files[MARKER] = _marker_content(files)
    for rel in [*diff.added, *diff.changed]:
        atomic_write(folder / rel, files[rel])
    for rel in diff.removed:
        (folder / rel).unlink(missing_ok=True)
        _prune_empty(folder.parent, (folder / rel).parent)


def atomic_write(path: Path, content: bytes) -> None:
    """Readers see the old content or the new, never a half-written file (a crash, a full disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune_empty(root: Path, folder: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
