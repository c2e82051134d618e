"""Machine renderings of diagnostics: JSON for bots and GitHub workflow annotations."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pyagent_compile.diagnostics.model import Diagnostic, Label, Severity, Span


def span_to_json(span: Span) -> dict[str, Any]:
    return {
        "file": span.file,
        "line": span.line,
        "col": span.col,
        "endLine": span.end_line or span.line,
        "endCol": span.end_col or span.col,
    }


def _label_to_json(label: Label) -> dict[str, Any]:
    return {**span_to_json(label.span), "message": label.message}


def diagnostic_to_json(diag: Diagnostic) -> dict[str, Any]:
    return {
        "code": diag.code,
        "severity": diag.severity.value,
        "message": diag.message,
        "path": diag.path,
        "location": _label_to_json(diag.primary) if diag.primary else None,
        "related": [_label_to_json(label) for label in diag.secondary],
        "help": diag.help,
    }


def render_json(diags: Iterable[Diagnostic], errors: int, warnings: int) -> str:
    document = {
        "diagnostics": [diagnostic_to_json(d) for d in diags],
        "summary": {"errors": errors, "warnings": warnings},
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(diags: Iterable[Diagnostic]) -> str:
    """`::error file=F,line=L,col=C,title=T::message`, one line per diagnostic."""
    lines = []
    for diag in diags:
        props = []
        if diag.span is not None:
            span = diag.span
            props += [f"file={_escape_property(span.file)}", f"line={span.line}", f"col={span.col}"]
            if span.end_line:
                props.append(f"endLine={span.end_line}")
        props.append(f"title={_escape_property(diag.code)}")
        where = f"{diag.path}: " if diag.path else ""
        text = f"{where}{diag.message}"
        if diag.help:
            text += f"\nhelp: {diag.help}"
        lines.append(f"::{_GITHUB_LEVEL[diag.severity]} {','.join(props)}::{_escape_data(text)}")
    return "\n".join(lines) + ("\n" if lines else "")
