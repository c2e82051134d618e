"""What a spec change does to the infrastructure: the per-resource difference of two plans.

Objects are matched by their logical name (`<kind>/<name>`, the naming contract), so a
renamed resource shows as one removed and one added, exactly as Pulumi would replace it.
Secret values are masked before anything is compared or shown."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from pyagent_compile.canonical import to_yaml
from pyagent_compile.plan.model import Plan

MASK = "<masked>"


def masked(body: dict[str, Any]) -> dict[str, Any]:
    """The object with every Secret value replaced by a mask (keys stay visible); a changed
    value shows as a changed hash-free line only, so the diff never carries the secret."""
    if body.get("kind") != "Secret":
        return body
    out = dict(body)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = {k: MASK for k in out[key]}
    return out


@dataclass(frozen=True)
class Change:
    logical_name: str
    kind: str
    diff: str  # unified diff of the canonical YAML (an added object: all of it), empty when removed
    secret_changed: bool = False  # a Secret's values changed (masked, so not visible in diff)


@dataclass
class EnvironmentDiff:
    environment: str
    added: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def summary(self) -> dict[str, dict[str, int]]:
        """{kind: {"added": n, "changed": n, "removed": n}}, kinds sorted."""
        counts: dict[str, dict[str, int]] = {}
        for what, changes in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            for change in changes:
                counts.setdefault(change.kind, {"added": 0, "changed": 0, "removed": 0})[what] += 1
        return dict(sorted(counts.items()))


def _objects(plan: Plan | None) -> dict[str, dict[str, Any]]:
    return {o.logical_name: o.body for o in plan.objects} if plan is not None else {}


def diff_plans(environment: str, base: Plan | None, head: Plan | None, labels: tuple[str, str]) -> EnvironmentDiff:
    """The difference from `base` to `head` (either may be absent: a new or deleted environment)."""
    old, new = _objects(base), _objects(head)
    result = EnvironmentDiff(environment)
    for name in sorted(old.keys() | new.keys()):
        kind = str((new.get(name) or old[name])["kind"])
        if name not in old:
            added = to_yaml(masked(new[name])).splitlines(keepends=True)
            lines = difflib.unified_diff([], added, "/dev/null", f"{labels[1]}/{name}", n=0)
            result.added.append(Change(name, kind, "".join(lines)))
        elif name not in new:
            result.removed.append(Change(name, kind, ""))
        elif old[name] != new[name]:
            before, after = to_yaml(masked(old[name])), to_yaml(masked(new[name]))
            lines = difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                f"{labels[0]}/{name}",
                f"{labels[1]}/{name}",
                n=2,
            )
            result.changed.append(Change(name, kind, "".join(lines), secret_changed=before == after))
    return result
