"""Reading a spec file as UTF-8 text, with a diagnostic for everything that is not."""

from __future__ import annotations

from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic, Label, Span

MAX_SPEC_BYTES = 32 * 1024 * 1024


def _problem(code: str, display: str, message: str, help_: str = "", line: int = 0, col: int = 0) -> Diagnostic:
    label = Label(Span(display, line, col)) if line else None
    return Diagnostic(code=code, message=message, primary=label, help=help_)


def read_text(path: Path, display: str) -> tuple[str | None, list[Diagnostic]]:
    """Read `path`; never raises for anything a user can hand us."""
    try:
        if path.is_dir():
            return None, [
                _problem(
                    "PA100",
                    display,
                    f"{display} is a directory, not a spec file",
                    "name the spec file inside it, e.g. swarm.yaml",
                )
            ]
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            return None, [
                _problem("PA107", display, f"{display} is {size} bytes; specs are read up to {MAX_SPEC_BYTES}")
            ]
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [_problem("PA100", display, f"{display}: no such file")]
    except OSError as exc:
        return None, [_problem("PA100", display, f"{display}: cannot read: {exc.strerror or exc}")]
    return decode(raw, display)


def decode(raw: bytes, display: str) -> tuple[str | None, list[Diagnostic]]:
    if b"\x00" in raw[:8192]:
        return None, [_problem("PA105", display, f"{display} looks binary (it contains NUL bytes)")]
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line, col = _line_col_of_byte(raw, exc.start)
        return None, [
            _problem(
                "PA105",
                display,
                f"{display} is not valid UTF-8 (byte {exc.start})",
                "save the file as UTF-8",
                line,
                col,
            )
        ]


def _line_col_of_byte(raw: bytes, offset: int) -> tuple[int, int]:
    before = raw[:offset]
    line = before.count(b"\n") + 1
    start = before.rfind(b"\n") + 1
    col = len(before[start:].decode("utf-8", errors="replace")) + 1
    return line, col
