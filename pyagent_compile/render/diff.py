"""Renderings of a plan diff: text for a terminal, Markdown for a pull-request comment,
JSON for bots. Each starts with the summary (added, changed, removed per kind), then shows
only what changed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pyagent_compile.plan.diff import Change, EnvironmentDiff

MARKER = "<!-- pyagent-diff -->"  # lets a bot find and update its own comment


def _counts(diff: EnvironmentDiff) -> str:
    return f"{len(diff.added)} added, {len(diff.changed)} changed, {len(diff.removed)} removed"


def _secret_note(change: Change) -> str:
    return "(Secret values changed; masked)\n" if change.secret_changed else ""


def render_text(diffs: Sequence[EnvironmentDiff], title: str) -> str:
    out = [f"pyagent diff {title}\n"]
    for diff in diffs:
        out.append(f"\nenvironment {diff.environment}: {_counts(diff)}\n")
        for kind, counts in diff.summary().items():
            parts = ", ".join(
                f"{sign}{counts[what]} {what}"
                for sign, what in (("+", "added"), ("~", "changed"), ("-", "removed"))
                if counts[what]
            )
            out.append(f"  {kind:<22} {parts}\n")
    for diff in diffs:
        for change in diff.added:
            out.append(f"\n+ {diff.environment}: {change.logical_name}\n{change.diff}")
        for change in diff.removed:
            out.append(f"\n- {diff.environment}: {change.logical_name}\n")
        for change in diff.changed:
            out.append(f"\n~ {diff.environment}: {change.logical_name}\n{_secret_note(change)}{change.diff}")
    if all(d.empty for d in diffs):
        out.append("\nno changes\n")
    return "".join(out)


def render_markdown(diffs: Sequence[EnvironmentDiff], title: str) -> str:
    out = [MARKER, f"### pyagent diff `{title}`", ""]
    if all(d.empty for d in diffs):
        return "\n".join([*out, "No infrastructure changes.", ""])
    out += ["| environment | kind | added | changed | removed |", "|---|---|---:|---:|---:|"]
    for diff in diffs:
        for kind, counts in diff.summary().items():
            out.append(
                f"| {diff.environment} | {kind} | {counts['added'] or ''} | {counts['changed'] or ''} | "
                f"{counts['removed'] or ''} |"
            )
    for diff in diffs:
        if diff.empty:
            continue
        out += ["", f"<details><summary><b>{diff.environment}</b>: {_counts(diff)}</summary>", ""]
        out += [f"- ➖ removed `{c.logical_name}`" for c in diff.removed]
        for change in [*diff.added, *diff.changed]:
            verb = "added" if change in diff.added else "changed"
            note = _secret_note(change).strip()
            out += [
                "",
                f"{verb} `{change.logical_name}` {note}".rstrip(),
                "",
                "```diff",
                change.diff.rstrip("\n"),
                "```",
            ]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def render_json(diffs: Sequence[EnvironmentDiff], title: str) -> str:
    def change(c: Change) -> dict[str, Any]:
        return {"logicalName": c.logical_name, "kind": c.kind, "diff": c.diff, "secretChanged": c.secret_changed}

    document = {
        "title": title,
        "environments": [
            {
                "name": d.environment,
                "summary": d.summary(),
                "added": [change(c) for c in d.added],
                "changed": [change(c) for c in d.changed],
                "removed": [change(c) for c in d.removed],
            }
            for d in diffs
        ],
        "changes": sum(len(d.added) + len(d.changed) + len(d.removed) for d in diffs),
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
