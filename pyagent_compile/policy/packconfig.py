"""The CrossGuard pack's configuration for one stack, derived from the spec.

CrossGuard sees resource properties only, so what the rules need from the spec travels as
per-policy configuration (`pulumi up --policy-pack policies/pulumi --policy-pack-config FILE`):
the tier, the mesh and Raft ports, the allowed personal-data jurisdictions, and the logical
names that active waivers exempt. With
it, the pack's verdicts are exactly `pyagent policy check`'s for the object and stack rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyagent_compile.load.document import Document
from pyagent_compile.model.spec import Swarm
from pyagent_compile.plan import Plan
from pyagent_compile.policy.catalog import RuleInfo, load_catalog
from pyagent_compile.policy.engine import collect_findings, context_for, expired, waiver_matches


def policy_name(rule: RuleInfo) -> str:
    """The CrossGuard policy name of a rule: `pa511-concrete-allow-rules`."""
    return f"{rule.id.lower()}-{rule.name}"


def pack_config(plan: Plan, swarm: Swarm, doc: Document, today: dt.date) -> dict[str, Any]:
    ctx = context_for(plan, swarm)
    findings = collect_findings(plan, swarm)
    active = [w for w in swarm.waivers if not expired(w, today)]
    config: dict[str, Any] = {}
    for rule in load_catalog().values():
        if rule.scope == "spec":
            continue
        waived = sorted(
            {
                f.logical_name
                for f in findings
                if f.rule.id == rule.id and f.logical_name and any(waiver_matches(w, f) for w in active)
            }
        )
        config[policy_name(rule)] = {
            "tier": ctx.tier,
            "internalPorts": sorted(ctx.internal_ports),
            "jurisdictions": sorted(ctx.jurisdictions),
            "waived": waived,
        }
    return config
