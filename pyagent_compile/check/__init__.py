"""Stage 3: semantic checks over the typed model. Each check is a pure function from a
CheckContext to diagnostics; `run_checks` runs them all so one run reports every problem."""

from __future__ import annotations

from collections.abc import Callable

from pyagent_compile.check.consensus import check_consensus
from pyagent_compile.check.context import CheckContext
from pyagent_compile.check.deployment import check_deployment
from pyagent_compile.check.hardware import check_hardware
from pyagent_compile.check.manifests import check_manifests
from pyagent_compile.check.models import check_models
from pyagent_compile.check.names import check_names
from pyagent_compile.check.ports import check_ports
from pyagent_compile.check.references import check_references
from pyagent_compile.check.scenarios import check_scenarios
from pyagent_compile.check.tools import check_tool_calls
from pyagent_compile.diagnostics import Diagnostic

CHECKS: tuple[Callable[[CheckContext], list[Diagnostic]], ...] = (
    check_names,
    check_references,
    check_hardware,
    check_consensus,
    check_ports,
    check_manifests,
    check_tool_calls,
    check_models,
    check_scenarios,
    check_deployment,
)


def run_checks(ctx: CheckContext) -> list[Diagnostic]:
    return [diag for check in CHECKS for diag in check(ctx)]


__all__ = ["CheckContext", "run_checks"]
