"""What every semantic check reads: the typed model and where each of its values was written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic, Label
from pyagent_compile.load.document import Document, PathT, format_path
from pyagent_compile.load.scenario import LoadedScenario
from pyagent_compile.model.spec import Swarm, Tier
from pyagent_compile.model.tools_lock import ToolsLock


@dataclass(frozen=True)
class CheckContext:
    swarm: Swarm
    doc: Document
    env: str
    tier: Tier
    spec_dir: Path
    # The tools lock beside the spec (None: there is none, and mcp steps are not checked
    # against servers) and its path as shown to users.
    tools_lock: ToolsLock | None = None
    tools_lock_display: str = ""
    # The scenario files of the spec's `verify` steps (and any others a command asks for), by the
    # path as the step writes it, read by the pipeline; check/scenarios.py checks them.
    scenarios: Mapping[str, LoadedScenario] = field(default_factory=dict)

    def problem(
        self,
        code: str,
        path: PathT,
        message: str,
        help_: str = "",
        label: str = "",
        related: tuple[tuple[PathT, str], ...] = (),
        on_key: bool = False,
    ) -> Diagnostic:
        """A diagnostic at the value (or key) written at `path`, with other places involved."""
        span = self.doc.key_span(path) if on_key else self.doc.value_span(path)
        secondary = []
        for other_path, other_label in related:
            other = self.doc.key_span(other_path) if on_key else self.doc.value_span(other_path)
            if other is not None:
                secondary.append(Label(other, other_label))
        return Diagnostic(
            code,
            message,
            path=format_path(path),
            primary=Label(span, label) if span else None,
            secondary=tuple(secondary),
            help=help_,
        )
