"""Policies: data sovereignty, zero-trust firewall and hygiene rules over the plan.

One rule set serves three places: `pyagent policy check` (the whole plan plus the spec),
CI formats (the same diagnostics rendered as SARIF, JUnit, GitHub annotations), and the
Pulumi CrossGuard pack in policies/pulumi/, which runs the object- and stack-level rules
on the resources `pulumi up` is about to create. The catalog (ids, severities, rationale,
hints) is policies/rules.yaml.
"""

from pyagent_compile.policy.catalog import RuleInfo, load_catalog
from pyagent_compile.policy.engine import check_plan, evaluate_object, evaluate_stack
from pyagent_compile.policy.model import ObjectContext, Violation

__all__ = [
    "ObjectContext",
    "RuleInfo",
    "Violation",
    "check_plan",
    "evaluate_object",
    "evaluate_stack",
    "load_catalog",
]
