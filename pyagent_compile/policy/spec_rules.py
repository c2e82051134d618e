"""Rules that need the spec: the owner's declarations (PA502, where pools are, reads the
`pyagent.dev/jurisdiction` label of the rendered workloads, so CrossGuard runs it too).

They run in `pyagent policy check` only: CrossGuard sees resource properties, not the spec
(docs/policies.md says which rule runs where)."""

from __future__ import annotations

from collections.abc import Callable

from pyagent_compile.model.spec import Swarm
from pyagent_compile.policy.model import Violation

SpecRule = Callable[[Swarm], list[Violation]]


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
    "PA503": personal_data_declared,
}
