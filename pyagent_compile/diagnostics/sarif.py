"""SARIF 2.1.0 (OASIS): the format GitHub code scanning and most CI dashboards ingest.

One run, tool `pyagent`, one reportingDescriptor per code that occurs (title and explanation
from the code table), one result per diagnostic located at the spec's file:line:col.
Validated against the official schema in the tests (tests/policy/data/sarif-schema-2.1.0.json).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pyagent_compile import __version__
from pyagent_compile.diagnostics.codes import CODES
from pyagent_compile.diagnostics.model import Diagnostic, Label, Severity, Span

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://pyagent.dev/docs/policies"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}


def _region(span: Span) -> dict[str, int]:
    region = {"startLine": max(span.line, 1), "startColumn": max(span.col, 1)}
    if span.end_line:
        region["endLine"] = max(span.end_line, region["startLine"])
        if span.end_col:
            region["endColumn"] = max(span.end_col, 1)
    return region


def _location(label: Label, index: int | None = None) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": label.span.file}, "region": _region(label.span)}
    }
    if index is not None:
        location["id"] = index
    if label.message:
        location["message"] = {"text": label.message}
    return location


def _rule(code: str) -> dict[str, Any]:
    info = CODES.get(code)
    rule: dict[str, Any] = {"id": code}
    if info is not None:
        rule["name"] = "".join(word.capitalize() for word in info.title.replace("-", " ").split())
        rule["shortDescription"] = {"text": info.title}
        rule["fullDescription"] = {"text": info.explanation}
        rule["help"] = {"text": f"{info.explanation}\n\nRun `pyagent explain {code}`."}
    rule["helpUri"] = f"{INFORMATION_URI}#{code.lower()}"
    return rule


def sarif_document(diags: Iterable[Diagnostic]) -> dict[str, Any]:
    ordered = list(diags)
    codes = sorted({d.code for d in ordered})
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for diag in ordered:
        text = f"{diag.path}: {diag.message}" if diag.path else diag.message
        if diag.help:
            text += f"\nhelp: {diag.help}"
        result: dict[str, Any] = {
            "ruleId": diag.code,
            "ruleIndex": index[diag.code],
            "level": _LEVEL[diag.severity],
            "message": {"text": text},
        }
        if diag.primary is not None:
            location = _location(diag.primary)
            if diag.path:
                location["logicalLocations"] = [{"fullyQualifiedName": diag.path, "kind": "member"}]
            result["locations"] = [location]
        if diag.suppressed:
            result["suppressions"] = [{"kind": "inSource", "status": "accepted", "justification": diag.suppressed}]
        if diag.secondary:
            result["relatedLocations"] = [_location(label, i + 1) for i, label in enumerate(diag.secondary)]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "pyagent",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(c) for c in codes],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render_sarif(diags: Iterable[Diagnostic]) -> str:
    return json.dumps(sarif_document(diags), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
