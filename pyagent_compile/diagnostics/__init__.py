"""Diagnostics: the user-facing contract for every problem a user can cause.

A diagnostic carries a stable code, the dotted path in the spec, the file:line:col of the
value (and of any other place involved), and a hint. Renderers for people and machines
live beside this module and all read the same objects.
"""

from pyagent_compile.diagnostics.model import (
    Diagnostic,
    Diagnostics,
    Label,
    Severity,
    Span,
    sort_key,
)

__all__ = ["Diagnostic", "Diagnostics", "Label", "Severity", "Span", "sort_key"]
