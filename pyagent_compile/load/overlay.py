"""Environment overlays: the effective document for one environment, with provenance.

Order: the base, then each environment of the `extends` chain from the root, each applying
its `file` and then its inline `overrides`. Mappings merge key by key; lists and scalars
replace. Every effective value keeps the file:line:col of the overlay that set it, so a
diagnostic on a prod value points at the prod overlay, not the base.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyagent_compile.diagnostics import Diagnostic, Label, Span
from pyagent_compile.load.document import Document, PathT, format_path
from pyagent_compile.suggest import did_you_mean

NAMED_COLLECTIONS = ("nodes", "cores", "manifests")
FIXED_KEYS = ("apiVersion", "kind", "environments")

Loader = Callable[[Path, str], tuple[Document | None, list[Diagnostic]]]


def environment_names(base: Document) -> list[str]:
    envs = base.data.get("environments") if isinstance(base.data, dict) else None
    return sorted(envs) if isinstance(envs, dict) and envs else []


def effective_document(
    base: Document, env: str, spec_dir: Path, display_dir: str, loader: Loader
) -> tuple[Document, list[Diagnostic]]:
    chain, diags = _extends_chain(base, env)
    if diags:
        return base, diags
    result = Document(copy.deepcopy(base.data), base.file, dict(base.values), dict(base.keys))
    for name in chain:
        for overlay in _overlays_of(base, name, spec_dir, display_dir, loader, diags):
            diags += _check_overlay(overlay, base)
            _merge_into(result, overlay)
    return result, diags


def _env_entry(base: Document, name: str) -> dict[str, Any]:
    entry = base.data.get("environments", {}).get(name)
    return entry if isinstance(entry, dict) else {}


def _extends_cycle(base: Document, circle: list[str]) -> Diagnostic:
    """One diagnostic per circle, whichever environment on it was being compiled: the circle is
    told from its first name in sort order, at the `extends` that closes it, so the pipeline's
    de-duplication keeps one. Every other `extends` on the circle is a secondary label."""
    start = circle.index(min(circle))
    ordered = circle[start:] + circle[:start]
    spans = [(env, base.value_span(("environments", env, "extends"))) for env in ordered]
    closing, closing_span = spans[-1]
    return Diagnostic(
        "PA313",
        f"environments extend each other in a circle: {' -> '.join([*ordered, ordered[0]])}",
        path=f"environments.{closing}.extends",
        primary=Label(closing_span) if closing_span else None,
        secondary=tuple(
            Label(span, f"{env} extends {ordered[i + 1]}") for i, (env, span) in enumerate(spans[:-1]) if span
        ),
        help="let one of them extend nothing: it then starts from the base spec",
    )


def _extends_chain(base: Document, env: str) -> tuple[list[str], list[Diagnostic]]:
    envs = base.data.get("environments") or {}
    chain: list[str] = []
    name: str | None = env
    while name is not None:
        if name in chain:
            return [], [_extends_cycle(base, chain[chain.index(name) :])]
        chain.append(name)
        parent = _env_entry(base, name).get("extends")
        if parent is not None and (not isinstance(parent, str) or parent not in envs):
            path = ("environments", name, "extends")
            span = base.value_span(path)
            return [], [
                Diagnostic(
                    "PA204",
                    f"unknown environment {parent!r}",
                    path=format_path(path),
                    primary=Label(span) if span else None,
                    help=did_you_mean(str(parent), envs) or f"defined: {', '.join(sorted(envs))}",
                )
            ]
        name = parent
    return list(reversed(chain)), []


def _overlays_of(
    base: Document, name: str, spec_dir: Path, display_dir: str, loader: Loader, diags: list[Diagnostic]
) -> list[Document]:
    entry = _env_entry(base, name)
    overlays: list[Document] = []
    file = entry.get("file")
    if isinstance(file, str):
        display = f"{display_dir}/{file}" if display_dir else file
        if not (spec_dir / file).is_file():
            path = ("environments", name, "file")
            span = base.value_span(path)
            diags.append(
                Diagnostic(
                    "PA208",
                    f"overlay file {file!r} not found",
                    path=format_path(path),
                    primary=Label(span) if span else None,
                    help="the path is relative to the spec's folder",
                )
            )
        else:
            doc, errors = loader(spec_dir / file, display)
            diags += errors
            if doc is not None and isinstance(doc.data, dict):
                overlays.append(doc)
    overrides = entry.get("overrides")
    if isinstance(overrides, dict):
        overlays.append(_subdocument(base, ("environments", name, "overrides")))
    return overlays


def _subdocument(doc: Document, prefix: PathT) -> Document:
    n = len(prefix)
    node: Any = doc.data
    for part in prefix:
        node = node[part]
    values = {p[n:]: s for p, s in doc.values.items() if p[:n] == prefix}
    keys = {p[n:]: s for p, s in doc.keys.items() if p[:n] == prefix and len(p) > n}
    return Document(node, doc.file, values, keys)


def _check_overlay(overlay: Document, base: Document) -> list[Diagnostic]:
    diags = []
    for key in overlay.data:
        if key in FIXED_KEYS:
            span = overlay.key_span((key,))
            diags.append(
                Diagnostic(
                    "PA308",
                    f"an environment overlay cannot set `{key}`",
                    path=key,
                    primary=Label(span) if span else None,
                )
            )
    for collection in NAMED_COLLECTIONS:
        added = overlay.data.get(collection)
        known = base.data.get(collection)
        if not isinstance(added, dict) or not isinstance(known, dict):
            continue
        for name in added:
            if name not in known:
                path = (collection, name)
                span = overlay.key_span(path)
                diags.append(
                    Diagnostic(
                        "PA308",
                        f"the overlay names {collection[:-1] if collection != 'nodes' else 'pool'} "
                        f"{name!r}, which the base does not define",
                        path=format_path(path),
                        primary=Label(span) if span else None,
                        help=did_you_mean(name, known) or "define it in the base spec first",
                    )
                )
    return diags


def _merge_into(target: Document, overlay: Document) -> None:
    for key, value in overlay.data.items():
        if key in FIXED_KEYS:
            continue
        _merge_value(target, target.data, (key,), value, overlay)


def _merge_value(target: Document, parent: dict[str, Any], path: PathT, value: Any, overlay: Document) -> None:
    key = path[-1]
    assert isinstance(key, str)
    current = parent.get(key)
    if key in parent and isinstance(current, dict) and isinstance(value, dict):
        target.keys.setdefault(path, overlay.keys.get(path, Span(overlay.file, 1, 1)))
        for sub_key, sub_value in value.items():
            _merge_value(target, current, (*path, sub_key), sub_value, overlay)
        return
    parent[key] = copy.deepcopy(value)
    _replace_positions(target, path, overlay)


def _replace_positions(target: Document, path: PathT, overlay: Document) -> None:
    n = len(path)
    for table, source in ((target.values, overlay.values), (target.keys, overlay.keys)):
        for stale in [p for p in table if p[:n] == path]:
            del table[stale]
        table.update({p: s for p, s in source.items() if p[:n] == path})
