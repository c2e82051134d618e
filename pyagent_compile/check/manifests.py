"""Logic manifests are DAGs (PA309) whose bindings agree on types (PA310)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.model.spec import STEP_INPUT_TYPES, STEP_OUTPUT, Manifest


def check_manifests(ctx: CheckContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, manifest in ctx.swarm.manifests.items():
        ids = [s.id for s in manifest.steps]
        if len(set(ids)) == len(ids):  # with duplicate ids the edges are ambiguous (PA301 says so)
            out += _cycle(ctx, name, manifest)
        out += _types(ctx, name, manifest)
    return out


def step_edges(manifest: Manifest) -> dict[str, list[str]]:
    """step id -> the steps it depends on, from `after` and from `steps.<id>` input bindings."""
    ids = {s.id for s in manifest.steps}
    edges: dict[str, list[str]] = {}
    for step in manifest.steps:
        deps = list(step.after)
        deps += [b.partition(".")[2] for b in step.inputs.values() if b.startswith("steps.")]
        edges[step.id] = sorted({d for d in deps if d in ids})
    return edges


def _cycle(ctx: CheckContext, name: str, manifest: Manifest) -> Iterable[Diagnostic]:
    edges = step_edges(manifest)
    index = {s.id: i for i, s in enumerate(manifest.steps)}
    cycle = _find_cycle(edges)
    if not cycle:
        return
    paths = [("manifests", name, "steps", index[step], "id") for step in cycle]
    related = tuple((p, f"step {cycle[i]!r} is on the cycle") for i, p in enumerate(paths[1:], 1))
    yield ctx.problem(
        "PA309",
        paths[0],
        f"steps depend on each other in a circle: {' -> '.join([*cycle, cycle[0]])}",
        "remove one dependency (`after` or a `steps.` input) to break the cycle",
        related=related,
    )


def _find_cycle(edges: dict[str, list[str]]) -> list[str]:
    """One cycle, found iteratively (a manifest may have thousands of steps)."""
    state: dict[str, int] = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = [start]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            deps = edges.get(node, [])
            if i < len(deps):
                stack[-1] = (node, i + 1)
                nxt = deps[i]
                if state.get(nxt) == 1:
                    return trail[trail.index(nxt) :]
                if not state.get(nxt):
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    trail.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                trail.pop()
    return []


def _types(ctx: CheckContext, name: str, manifest: Manifest) -> Iterable[Diagnostic]:
    outputs = {s.id: STEP_OUTPUT[s.kind] for s in manifest.steps}
    for index, step in enumerate(manifest.steps):
        for input_name, want in STEP_INPUT_TYPES.get(step.kind, {}).items():
            path = ("manifests", name, "steps", index, "inputs", input_name)
            binding = step.inputs.get(input_name)
            if binding is None:
                yield ctx.problem(
                    "PA202",
                    ("manifests", name, "steps", index),
                    f"a {step.kind} step needs the input {input_name!r} of type {want}",
                    f"bind it, e.g. `{input_name}: steps.<id>`",
                )
                continue
            got = binding_type(binding, manifest, outputs)
            if got is not None and got != want:
                yield ctx.problem(
                    "PA310",
                    path,
                    f"{input_name!r} expects a {want}, but {binding} is a {got}",
                    f"bind a step whose output is a {want}",
                )
    for out_name, output in manifest.outputs.items():
        got = binding_type(output.source, manifest, outputs)
        if got is not None and got != output.type:
            yield ctx.problem(
                "PA310",
                ("manifests", name, "outputs", out_name, "from"),
                f"output {out_name!r} is declared {output.type}, but {output.source} is a {got}",
                f"declare `type: {got}` or take it from another step",
            )


def binding_type(binding: str, manifest: Manifest, outputs: Mapping[str, str]) -> str | None:
    """The value type a binding (`inputs.<name>`, `steps.<id>`) delivers, None when it is unknown."""
    kind, _, target = binding.partition(".")
    if kind == "steps":
        return outputs.get(target)
    if kind == "inputs":
        return manifest.inputs.get(target)
    return None
