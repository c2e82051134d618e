"""Raft quorum (PA305): at least one voter always; outside dev at least 3 and an odd count."""

from __future__ import annotations

from pyagent_compile.check.context import CheckContext
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.model.resources import voter_count


def check_consensus(ctx: CheckContext) -> list[Diagnostic]:
    voters = voter_count(ctx.swarm)
    voting = [name for name, pool in ctx.swarm.nodes.items() if "voter" in pool.roles]
    first = ("nodes", voting[0], "replicas") if voting else ("nodes",)
    related = tuple((("nodes", name, "replicas"), f"{ctx.swarm.nodes[name].replicas} voter(s)") for name in voting[1:])
    if voters == 0:
        return [
            ctx.problem(
                "PA305",
                ("nodes",),
                "no pool votes: the swarm has no Raft members",
                "give at least one pool `roles: [voter]`",
                on_key=True,
            )
        ]
    if ctx.tier == "dev":
        return []
    if voters < 3:
        return [
            ctx.problem(
                "PA305",
                first,
                f"{voters} voter(s) in {ctx.tier} tolerate no failure",
                "use 3 or 5 voters",
                related=related,
            )
        ]
    if voters % 2 == 0:
        return [
            ctx.problem(
                "PA305",
                first,
                f"{voters} voters: an even count tolerates no more failures than {voters - 1}",
                f"use {voters - 1} or {voters + 1} voters",
                related=related,
            )
        ]
    return []
