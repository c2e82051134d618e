"""Dangling references: every name the spec uses must be defined (PA204), every file it
names must exist (PA208)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.load.document import PathT
from pyagent_compile.model.spec import DelegateStep, Endpoint, McpStep, VerifyStep
from pyagent_compile.suggest import did_you_mean


def _unknown(ctx: CheckContext, path: PathT, what: str, name: str, defined: Iterable[str], where: str) -> Diagnostic:
    names = sorted(defined)
    hint = did_you_mean(name, names) or (
        f"defined: {', '.join(names)}" if names else f"nothing is defined under `{where}`"
    )
    return ctx.problem("PA204", path, f"unknown {what} {name!r}", hint, label=f"not defined under `{where}`")


def check_references(ctx: CheckContext) -> list[Diagnostic]:
    return [*_pool_cores(ctx), *_manifest_refs(ctx), *_firewall_refs(ctx)]


def _pool_cores(ctx: CheckContext) -> Iterable[Diagnostic]:
    cores = ctx.swarm.cores
    for pool_name, pool in ctx.swarm.nodes.items():
        for index, core in enumerate(pool.cores):
            if core not in cores:
                yield _unknown(ctx, ("nodes", pool_name, "cores", index), "core", core, cores, "cores:")


def _manifest_refs(ctx: CheckContext) -> Iterable[Diagnostic]:
    swarm = ctx.swarm
    for name, manifest in swarm.manifests.items():
        base: PathT = ("manifests", name)
        if manifest.core not in swarm.cores:
            yield _unknown(ctx, (*base, "core"), "core", manifest.core, swarm.cores, "cores:")
        step_ids = [s.id for s in manifest.steps]
        for index, step in enumerate(manifest.steps):
            path: PathT = (*base, "steps", index)
            for j, after in enumerate(step.after):
                if after not in step_ids:
                    yield _unknown(ctx, (*path, "after", j), "step", after, step_ids, f"manifests.{name}.steps")
            for input_name, binding in step.inputs.items():
                yield from _binding(ctx, (*path, "inputs", input_name), binding, manifest.inputs, step_ids, name)
            yield from _step_targets(ctx, path, step, manifest.core)
        for out_name, output in manifest.outputs.items():
            yield from _binding(
                ctx, (*base, "outputs", out_name, "from"), output.source, {}, step_ids, name, steps_only=True
            )


def _binding(
    ctx: CheckContext,
    path: PathT,
    binding: str,
    inputs: Mapping[str, str],
    step_ids: list[str],
    manifest: str,
    steps_only: bool = False,
) -> Iterable[Diagnostic]:
    kind, _, target = binding.partition(".")
    if kind == "steps" and target:
        if target not in step_ids:
            yield _unknown(ctx, path, "step", target, step_ids, f"manifests.{manifest}.steps")
    elif kind == "inputs" and target and not steps_only:
        if target not in inputs:
            yield _unknown(ctx, path, "manifest input", target, inputs, f"manifests.{manifest}.inputs")
    else:
        form = "`steps.<id>`" if steps_only else "`inputs.<name>` or `steps.<id>`"
        yield ctx.problem("PA206", path, f"{binding!r} is not a binding", f"write {form}")


def _step_targets(ctx: CheckContext, path: PathT, step: object, core_name: str) -> Iterable[Diagnostic]:
    swarm = ctx.swarm
    if isinstance(step, DelegateStep):
        if step.core not in swarm.cores:
            yield _unknown(ctx, (*path, "core"), "core", step.core, swarm.cores, "cores:")
        if step.manifest is not None and step.manifest not in swarm.manifests:
            yield _unknown(ctx, (*path, "manifest"), "logic manifest", step.manifest, swarm.manifests, "manifests:")
    elif isinstance(step, McpStep):
        core = swarm.cores.get(core_name)
        tools = [t.name for t in core.tools] if core else []
        tool = step.tool.split(".", 1)[0]
        if core is not None and tool not in tools:
            yield _unknown(ctx, (*path, "tool"), "tool", tool, tools, f"cores.{core_name}.tools")
    elif isinstance(step, VerifyStep) and not (ctx.spec_dir / step.scenario).is_file():
        yield ctx.problem(
            "PA208",
            (*path, "scenario"),
            f"scenario file {step.scenario!r} not found",
            "the path is relative to the spec's folder",
            label="no such file",
        )


def _firewall_refs(ctx: CheckContext) -> Iterable[Diagnostic]:
    for index, rule in enumerate(ctx.swarm.firewall.rules):
        for side, endpoint in (("from", rule.source), ("to", rule.to)):
            yield from _endpoint(ctx, ("firewall", "rules", index, side), endpoint)
        if rule.source.cidrs is not None and rule.to.cidrs is not None:
            yield ctx.problem(
                "PA307",
                ("firewall", "rules", index),
                f"rule {rule.name!r} joins two external "
                "networks; a swarm firewall rule has the swarm on at least one side",
                "make `from` or `to` a pool, a core or `swarm: true`",
            )


def _endpoint(ctx: CheckContext, path: PathT, endpoint: Endpoint) -> Iterable[Diagnostic]:
    if endpoint.pool is not None and endpoint.pool not in ctx.swarm.nodes:
        yield _unknown(ctx, (*path, "pool"), "pool", endpoint.pool, ctx.swarm.nodes, "nodes:")
    if endpoint.core is not None:
        if endpoint.core not in ctx.swarm.cores:
            yield _unknown(ctx, (*path, "core"), "core", endpoint.core, ctx.swarm.cores, "cores:")
        elif not any(endpoint.core in p.cores for p in ctx.swarm.nodes.values()):
            yield ctx.problem(
                "PA307",
                (*path, "core"),
                f"no pool runs the core {endpoint.core!r}",
                "add the core to a pool's `cores:` or remove the rule",
            )
