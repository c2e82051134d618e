"""Port collisions on a node (PA306): the mesh's listeners and the MCP tools served beside them."""

from __future__ import annotations

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.load.document import PathT


def check_ports(ctx: CheckContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    owners: dict[int, PathT] = {}
    ports = ctx.swarm.mesh.ports
    for name in ("mesh", "raft", "grpc", "metrics"):
        out += _claim(ctx, owners, getattr(ports, name), ("mesh", "ports", name))
    base = dict(owners)
    for pool in ctx.swarm.nodes.values():
        pool_owners = dict(base)
        for core_name in pool.cores:
            core = ctx.swarm.cores.get(core_name)
            for index, tool in enumerate(core.tools if core else []):
                if tool.port is not None:
                    out += _claim(ctx, pool_owners, tool.port, ("cores", core_name, "tools", index, "port"))
    return _unique(out)


def _claim(ctx: CheckContext, owners: dict[int, PathT], port: int, path: PathT) -> list[Diagnostic]:
    if port in owners:
        if owners[port] == path:
            return []
        return [
            ctx.problem(
                "PA306",
                path,
                f"port {port} is already used on the same node",
                "choose another port",
                label="used again here",
                related=((owners[port], "first used here"),),
            )
        ]
    owners[port] = path
    return []


def _unique(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str]] = set()
    out = []
    for diag in diags:
        key = (diag.path, diag.message)
        if key not in seen:
            seen.add(key)
            out.append(diag)
    return out
