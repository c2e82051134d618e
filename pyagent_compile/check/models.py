"""A `cort` step needs a model server to ask (PA314): its manifest's core's model must be the
object form with an `endpoint`, not only a model name."""

from __future__ import annotations

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.load.document import PathT
from pyagent_compile.model.spec import Model


def check_models(ctx: CheckContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, manifest in ctx.swarm.manifests.items():
        core = ctx.swarm.cores.get(manifest.core)
        if core is None:
            continue  # an unknown core is PA204's
        if isinstance(core.model, Model) and core.model.endpoint is not None:
            continue
        for index, step in enumerate(manifest.steps):
            if step.kind == "cort":
                out.append(_no_endpoint(ctx, name, manifest.core, index, step.id, core.model))
    return out


def _no_endpoint(ctx: CheckContext, manifest: str, core: str, index: int, step: str, model: object) -> Diagnostic:
    related: tuple[tuple[PathT, str], ...] = ()
    if model is None:
        what, name = f"core {core!r} declares no model", "<model>"
    else:
        name = model.name if isinstance(model, Model) else str(model)
        what = f"the model of core {core!r} ({name!r}) has no endpoint"
        related = ((("cores", core, "model"), "a model name, but no server to ask"),)
    return ctx.problem(
        "PA314",
        ("manifests", manifest, "steps", index, "kind"),
        f"step {step!r} of manifest {manifest!r} reasons with its core's model, but {what}",
        f"give core {core!r} a model server: `model: {{name: {name}, endpoint: http://127.0.0.1:8080/v1}}` "
        "(the base URL of an OpenAI-compatible chat-completions server)",
        label="a cort step",
        related=related,
    )
