"""The diagnostic data model, shared by the compiler, the policy engine and every renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Span:
    """A range in a source file. Lines and columns are 1-based; columns count characters."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Label:
    """A span with a short message shown under its caret."""

    span: Span
    message: str = ""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    severity: Severity = Severity.ERROR
    path: str = ""
    primary: Label | None = None
    secondary: tuple[Label, ...] = ()
    help: str = ""
    # Why the problem is accepted (a policy waiver's reason); SARIF reports it as a suppression.
    suppressed: str = ""

    @property
    def span(self) -> Span | None:
        return self.primary.span if self.primary else None


def sort_key(diag: Diagnostic) -> tuple[str, int, int, str, str]:
    """Problems are reported sorted by file and position, then by code for a stable order."""
    span = diag.span
    if span is None:
        return ("", 0, 0, diag.code, diag.message)
    return (span.file, span.line, span.col, diag.code, diag.message)


@dataclass
class Diagnostics:
    """An ordered collection with the counts the summary line needs."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diag: Diagnostic) -> None:
        self.items.append(diag)

    def extend(self, diags: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
        self.items.extend(diags)

    @property
    def errors(self) -> int:
        return sum(1 for d in self.items if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for d in self.items if d.severity is Severity.WARNING)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=sort_key)
