"""Source text for snippets, read lazily: only files that a diagnostic points at are read."""

from __future__ import annotations

from pathlib import Path


class SourceCache:
    def __init__(self, root: Path | None = None) -> None:
        self._root = root or Path.cwd()
        self._lines: dict[str, list[str] | None] = {}

    def register(self, file: str, text: str) -> None:
        self._lines[file] = text.splitlines()

    def line(self, file: str, number: int) -> str | None:
        if file not in self._lines:
            self._lines[file] = self._read(file)
        lines = self._lines[file]
        if lines is None or not 1 <= number <= len(lines):
            return None
        return lines[number - 1]

    def _read(self, file: str) -> list[str] | None:
        path = Path(file)
        if not path.is_absolute():
            path = self._root / path
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
