"""Deployment sanity: worker pools run cores (PA311), images are pinned outside dev (PA312)."""

from __future__ import annotations

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.model.types import is_pinned


def check_deployment(ctx: CheckContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, pool in ctx.swarm.nodes.items():
        if "worker" in pool.roles and not pool.cores:
            out.append(
                ctx.problem(
                    "PA311",
                    ("nodes", name, "roles"),
                    f"worker pool {name!r} runs no core",
                    "list the cores it runs under `cores:`, or drop the `worker` role",
                )
            )
    image = ctx.swarm.image
    if ctx.tier != "dev":
        if image.build is not None:
            out.append(
                ctx.problem(
                    "PA312",
                    ("image", "build"),
                    f"{ctx.env} ({ctx.tier}) cannot build the image at deploy time",
                    "build and push it, then set `image.ref` to "
                    "`<repository>@sha256:<digest>` in this environment's overrides",
                )
            )
        elif image.ref is not None and not is_pinned(image.ref):
            out.append(
                ctx.problem(
                    "PA312",
                    ("image", "ref"),
                    f"the image is not pinned by digest in {ctx.env}",
                    "use `<repository>@sha256:<digest>`; a tag can be moved after review",
                )
            )
    return out
