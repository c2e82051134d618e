"""The human rendering, in the style of rustc and KCL:

error[PA204]: nodes.gpu-pool.cores[1]: unknown core "secuirty"
  --> examples/research/swarm.yaml:42:13
   |
42 |     cores: [coder, secuirty]
   |                    ^^^^^^^^ not defined under `cores:`
   = help: did you mean "security"?
"""

from __future__ import annotations

from collections.abc import Iterable

from pyagent_compile.diagnostics.model import Diagnostic, Label, Severity
from pyagent_compile.diagnostics.sources import SourceCache

_COLOURS = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m", Severity.NOTE: "\x1b[1;36m"}
_BOLD = "\x1b[1m"
_BLUE = "\x1b[1;34m"
_RESET = "\x1b[0m"


class _Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.colour else text


def render_text(diags: Iterable[Diagnostic], sources: SourceCache, colour: bool = False) -> str:
    style = _Style(colour)
    blocks = [_render_one(d, sources, style) for d in diags]
    return "\n".join(blocks)


def summary_line(errors: int, warnings: int, files: int) -> str:
    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    if errors == 0 and warnings == 0:
        return f"ok: {plural(files, 'spec')} checked, no problems"
    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')} in {plural(files, 'spec')}"


def _render_one(diag: Diagnostic, sources: SourceCache, style: _Style) -> str:
    head = style.paint(_COLOURS[diag.severity], f"{diag.severity.value}[{diag.code}]")
    where = f"{diag.path}: " if diag.path else ""
    out = [f"{head}{style.paint(_BOLD, ': ' + where + diag.message)}"]
    labels = [diag.primary] if diag.primary else []
    labels += list(diag.secondary)
    gutter = max((len(str(lab.span.line)) for lab in labels), default=1)
    for index, label in enumerate(labels):
        out.extend(_render_label(label, sources, style, gutter, primary=index == 0))
    if diag.help:
        out.append(f"{' ' * (gutter + 1)}{style.paint(_BLUE, '=')} help: {diag.help}")
    return "\n".join(out) + "\n"


def _render_label(label: Label, sources: SourceCache, style: _Style, gutter: int, primary: bool) -> list[str]:
    span = label.span
    pad = " " * gutter
    arrow = "-->" if primary else ":::"
    lines = [f"{pad}{style.paint(_BLUE, arrow)} {span}"]
    text = sources.line(span.file, span.line)
    if text is None:
        if label.message:
            lines.append(f"{pad} {style.paint(_BLUE, '=')} {label.message}")
        return lines
    bar = style.paint(_BLUE, "|")
    width = _caret_width(text, span.col, span.end_line, span.line, span.end_col)
    mark = ("^" if primary else "-") * width
    caret = " " * (span.col - 1) + style.paint(_COLOURS[Severity.ERROR] if primary else _BLUE, mark)
    lines.append(f"{pad} {bar}")
    lines.append(f"{style.paint(_BLUE, str(span.line).rjust(gutter))} {bar} {text}")
    lines.append(f"{pad} {bar} {caret}{' ' + label.message if label.message else ''}")
    return lines


def _caret_width(text: str, col: int, end_line: int, line: int, end_col: int) -> int:
    if end_line == line and end_col > col:
        return end_col - col
    rest = text[col - 1 :].rstrip()
    return max(1, len(rest))
