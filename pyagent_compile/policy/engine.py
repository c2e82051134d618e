"""Running the rules: over one object (CrossGuard), over a stack, and over a whole plan with
its spec (`pyagent policy check`), where findings are located on the spec line that caused
them through the plan's source map, and waivers apply."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pyagent_compile.diagnostics import Diagnostic, Label, Severity
from pyagent_compile.load.document import Document, PathT, format_path
from pyagent_compile.model.spec import Swarm, Waiver
from pyagent_compile.plan import Plan
from pyagent_compile.policy.catalog import RuleInfo, load_catalog
from pyagent_compile.policy.model import ObjectContext, Violation
from pyagent_compile.policy.rules import OBJECT_RULES, STACK_RULES
from pyagent_compile.policy.spec_rules import SPEC_RULES


def context_for(plan: Plan, swarm: Swarm) -> ObjectContext:
    ports = swarm.mesh.ports
    personal = swarm.sovereignty.personal_data
    allowed = frozenset(personal.jurisdictions) if personal is not None else frozenset()
    return ObjectContext(tier=plan.tier, internal_ports=frozenset({ports.mesh, ports.raft}), jurisdictions=allowed)


def evaluate_object(body: dict[str, Any], ctx: ObjectContext) -> list[Violation]:
    """Every object-level rule that applies to the tier, on one Kubernetes object."""
    catalog = load_catalog()
    return [
        v for rule_id, rule in OBJECT_RULES.items() if catalog[rule_id].applies_to(ctx.tier) for v in rule(body, ctx)
    ]


def evaluate_stack(bodies: list[dict[str, Any]], ctx: ObjectContext) -> list[tuple[dict[str, Any], Violation]]:
    """Every stack-level rule, on all objects of one stack; each violation with its object."""
    catalog = load_catalog()
    return [
        found
        for rule_id, rule in STACK_RULES.items()
        if catalog[rule_id].applies_to(ctx.tier)
        for found in rule(bodies, ctx)
    ]


@dataclass(frozen=True)
class Finding:
    rule: RuleInfo
    violation: Violation
    logical_name: str
    spec_path: PathT
    source: PathT
    waiver: int | None = None


def collect_findings(plan: Plan, swarm: Swarm) -> list[Finding]:
    catalog = load_catalog()
    ctx = context_for(plan, swarm)
    out = []
    by_id = {id(o.body): o for o in plan.objects}
    for obj in plan.objects:
        for v in evaluate_object(obj.body, ctx):
            where = v.spec_path if v.spec_path is not None else (*obj.source, *v.subpath)
            out.append(Finding(catalog[v.rule], v, obj.logical_name, where, obj.source))
    for body, v in evaluate_stack([o.body for o in plan.objects], ctx):
        obj = by_id[id(body)]
        where = v.spec_path if v.spec_path is not None else obj.source
        out.append(Finding(catalog[v.rule], v, obj.logical_name, where, obj.source))
    for rule_id, spec_rule in SPEC_RULES.items():
        if catalog[rule_id].applies_to(plan.tier):
            for v in spec_rule(swarm):
                where = v.spec_path or ()
                out.append(Finding(catalog[v.rule], v, "", where, where))
    return out


def _path_matches(pattern: str, path: PathT) -> bool:
    text = format_path(path)
    return bool(text) and (text == pattern or text.startswith(pattern + ".") or text.startswith(pattern + "["))


def waiver_matches(waiver: Waiver, finding: Finding) -> bool:
    if waiver.rule_id != finding.rule.id:
        return False
    if finding.logical_name and waiver.object == finding.logical_name:
        return True
    return _path_matches(waiver.object, finding.source) or _path_matches(waiver.object, finding.spec_path)


def expired(waiver: Waiver, today: dt.date) -> bool:
    try:
        return dt.date.fromisoformat(waiver.expires) < today
    except ValueError:
        return True


def check_plan(plan: Plan, swarm: Swarm, doc: Document, today: dt.date) -> list[Diagnostic]:
    """All policy findings of one environment as diagnostics located in the spec."""
    catalog = load_catalog()
    findings = collect_findings(plan, swarm)
    used: set[int] = set()
    diags = []
    for finding in findings:
        waiver_index = next(
            (i for i, w in enumerate(swarm.waivers) if waiver_matches(w, finding) and not expired(w, today)), None
        )
        if waiver_index is not None:
            used.add(waiver_index)
        diags.append(_diagnostic(doc, finding, swarm.waivers[waiver_index] if waiver_index is not None else None))
    for index, waiver in enumerate(swarm.waivers):
        path: PathT = ("waivers", index)
        if expired(waiver, today):
            matched = any(waiver_matches(waiver, f) for f in findings)
            what = "and the finding it waived is reported again" if matched else "(it matches no finding)"
            diags.append(
                _spec_diag(
                    doc,
                    catalog["PA590"],
                    (*path, "expires"),
                    f"waiver of {waiver.rule_id} for {waiver.object!r} expired on {waiver.expires} {what}",
                )
            )
        elif index not in used:
            known = waiver.rule_id in catalog
            message = (
                f"waiver of {waiver.rule_id} for {waiver.object!r} matches no finding"
                if known
                else f"waiver names unknown rule {waiver.rule_id}"
            )
            diags.append(_spec_diag(doc, catalog["PA591"], (*path, "object" if known else "ruleId"), message))
    return diags


def _severity(rule: RuleInfo) -> Severity:
    return Severity.ERROR if rule.severity == "mandatory" else Severity.WARNING


def _diagnostic(doc: Document, finding: Finding, waiver: Waiver | None) -> Diagnostic:
    v = finding.violation
    span = doc.value_span(finding.spec_path)
    where = ": ".join(p for p in (finding.logical_name, v.field) if p)
    message = v.message
    severity = _severity(finding.rule)
    suppressed = ""
    if waiver is not None:
        severity = Severity.NOTE
        message += f" (waived until {waiver.expires}: {waiver.reason})"
        suppressed = f"{waiver.reason} (waiver expires {waiver.expires})"
    return Diagnostic(
        finding.rule.id,
        message,
        severity=severity,
        path=format_path(finding.spec_path),
        primary=Label(span, where) if span else None,
        help=finding.rule.hint,
        suppressed=suppressed,
    )


def _spec_diag(doc: Document, rule: RuleInfo, path: PathT, message: str) -> Diagnostic:
    span = doc.value_span(path)
    return Diagnostic(
        rule.id,
        message,
        severity=_severity(rule),
        path=format_path(path),
        primary=Label(span) if span else None,
        help=rule.hint,
    )
