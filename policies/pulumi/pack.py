"""The policies of pyagent's CrossGuard pack, built from the shared rule engine.

Kept apart from __main__.py, which constructs the PolicyPack (that starts the policy
analyzer's gRPC server), so that tests can import POLICIES and call `policy.validate(...)`
directly. Every object-level rule of policies/rules.yaml becomes a ResourceValidationPolicy
and every stack-level rule a StackValidationPolicy; spec-level rules cannot run here (the pack
sees resource properties only): `pyagent policy check` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from pyagent_compile.policy.catalog import RuleInfo, load_catalog
from pyagent_compile.policy.model import DEFAULT_INTERNAL_PORTS, ObjectContext, Violation, normalise
from pyagent_compile.policy.packconfig import policy_name
from pyagent_compile.policy.rules import OBJECT_RULES, STACK_RULES

K8S_PREFIX = "kubernetes:"
CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        "tier": {"type": "string", "enum": ["dev", "staging", "prod"], "default": "prod"},
        "internalPorts": {"type": "array", "items": {"type": "integer"}, "default": sorted(DEFAULT_INTERNAL_PORTS)},
        "jurisdictions": {"type": "array", "items": {"type": "string"}, "default": []},
        "waived": {"type": "array", "items": {"type": "string"}, "default": []},
    }
)


def plain(value: Any) -> Any:
    """Plain dicts and lists all the way down. The analyzer hands the properties over wrapped in
    pulumi_policy's read-only proxies (`unknown_checking_proxy`: Mapping and Sequence, not dict and list),
    which the rules' `isinstance(..., dict)` checks would otherwise take for absent fields."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    return value


def kubernetes_object(resource_type: str, props: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Kubernetes object a resource stands for: its properties, numbers made whole again,
    and `kind` from the type token (`kubernetes:apps/v1:StatefulSet`) when it is absent."""
    if not resource_type.startswith(K8S_PREFIX):
        return None
    body = normalise(plain(props))
    body.setdefault("kind", resource_type.rsplit(":", 1)[-1])
    return dict(body)


def context_of(config: Mapping[str, Any] | None) -> tuple[ObjectContext, frozenset[str]]:
    config = config or {}
    ports = frozenset(int(p) for p in config.get("internalPorts") or DEFAULT_INTERNAL_PORTS)
    allowed = frozenset(str(j) for j in config.get("jurisdictions") or ())
    ctx = ObjectContext(tier=str(config.get("tier") or "prod"), internal_ports=ports, jurisdictions=allowed)
    return ctx, frozenset(config.get("waived") or ())


def _text(violation: Violation) -> str:
    where = f" [{violation.field}]" if violation.field else ""
    return f"{violation.rule}: {violation.message}{where}"


def _level(rule: RuleInfo) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if rule.severity == "mandatory" else EnforcementLevel.ADVISORY


def resource_policy(rule: RuleInfo) -> ResourceValidationPolicy:
    check = OBJECT_RULES[rule.id]

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        body = kubernetes_object(args.resource_type, args.props)
        ctx, waived = context_of(args.get_config())
        if body is None or not rule.applies_to(ctx.tier) or args.name in waived:
            return
        for violation in check(body, ctx):
            report_violation(_text(violation), None)

    return ResourceValidationPolicy(
        name=policy_name(rule),
        description=f"{rule.id}: {rule.rationale}",
        validate=validate,
        enforcement_level=_level(rule),
        config_schema=CONFIG_SCHEMA,
        remediation_steps=rule.hint,
    )


def stack_policy(rule: RuleInfo) -> StackValidationPolicy:
    check = STACK_RULES[rule.id]

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        ctx, waived = context_of(args.get_config())
        if not rule.applies_to(ctx.tier):
            return
        named = [(r.name, kubernetes_object(r.resource_type, r.props), r.urn) for r in args.resources]
        bodies = [(name, body, urn) for name, body, urn in named if body is not None]
        urn_of = {id(body): (name, urn) for name, body, urn in bodies}
        for body, violation in check([body for _, body, _ in bodies], ctx):
            name, urn = urn_of[id(body)]
            if name not in waived:
                report_violation(_text(violation), urn)

    return StackValidationPolicy(
        name=policy_name(rule),
        description=f"{rule.id}: {rule.rationale}",
        validate=validate,
        enforcement_level=_level(rule),
        config_schema=CONFIG_SCHEMA,
        remediation_steps=rule.hint,
    )


def build_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    policies: list[ResourceValidationPolicy | StackValidationPolicy] = []
    for rule in load_catalog().values():
        if rule.scope == "object":
            policies.append(resource_policy(rule))
        elif rule.scope == "stack":
            policies.append(stack_policy(rule))
    return policies


POLICIES = build_policies()
