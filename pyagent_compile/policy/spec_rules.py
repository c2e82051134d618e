"""Rules that need the spec: jurisdictions of pools and the owner's declarations.

They run in `pyagent policy check` only: CrossGuard sees resource properties, not the spec
(docs/policies.md says which rule runs where)."""

from __future__ import annotations

from collections.abc import Callable

from pyagent_compile.model.spec import Swarm
from pyagent_compile.policy.model import Violation

SpecRule = Callable[[Swarm], list[Violation]]


def personal_data_jurisdiction(swarm: Swarm) -> list[Violation]:
    personal = swarm.sovereignty.personal_data
    if personal is None:
        return []
    allowed = set(personal.jurisdictions)
    out = []
    for name, pool in sorted(swarm.nodes.items()):
        where = pool.placement.jurisdiction
        if where is None:
            out.append(
                Violation(
                    "PA502",
                    f"pool {name!r} declares no jurisdiction, but may hold personal data "
                    f"allowed only in {', '.join(sorted(allowed))}",
                    spec_path=("nodes", name, "placement"),
                    field=f"nodes.{name}",
                )
            )
        elif where not in allowed:
            out.append(
                Violation(
                    "PA502",
                    f"pool {name!r} is in {where}, outside the allowed jurisdictions ({', '.join(sorted(allowed))})",
                    spec_path=("nodes", name, "placement", "jurisdiction"),
                    field=f"nodes.{name}",
                )
            )
    return out


def personal_data_declared(swarm: Swarm) -> list[Violation]:
    if swarm.metadata.owner is None or swarm.sovereignty.personal_data is not None:
        return []
    return [
        Violation(
            "PA503",
            "the swarm has an owner but declares no personal-data jurisdictions",
            spec_path=("metadata", "owner"),
        )
    ]


SPEC_RULES: dict[str, SpecRule] = {
    "PA502": personal_data_jurisdiction,
    "PA503": personal_data_declared,
}
