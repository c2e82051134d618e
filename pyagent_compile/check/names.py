"""Duplicate names in lists keyed by name (PA301); both places are reported.
(Duplicate keys of mappings such as `nodes:` are caught while loading, PA102.)"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.load.document import PathT


def _duplicates(ctx: CheckContext, base: PathT, names: Sequence[str], field: str, what: str) -> Iterable[Diagnostic]:
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:
            yield ctx.problem(
                "PA301",
                (*base, index, field),
                f"duplicate {what} {name!r}",
                f"rename one of them; {what}s are referred to by name",
                label="defined again here",
                related=(((*base, first[name], field), "first defined here"),),
            )
        else:
            first[name] = index


def check_names(ctx: CheckContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, manifest in ctx.swarm.manifests.items():
        out += _duplicates(ctx, ("manifests", name, "steps"), [s.id for s in manifest.steps], "id", "step")
    for name, core in ctx.swarm.cores.items():
        out += _duplicates(ctx, ("cores", name, "tools"), [t.name for t in core.tools], "name", "tool")
    out += _duplicates(ctx, ("firewall", "rules"), [r.name for r in ctx.swarm.firewall.rules], "name", "firewall rule")
    return out
