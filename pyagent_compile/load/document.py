"""A loaded document: plain data plus the source position of every key and value.

Positions are kept in side tables keyed by the value's path (a tuple of keys and list
indexes), so the data itself stays plain JSON-like Python that pydantic can validate,
and any later stage can point at the spec line a value came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyagent_compile.diagnostics import Span

PathT = tuple[str | int, ...]


def format_path(path: PathT) -> str:
    """`("nodes", "gpu-pool", "cores", 1)` -> `nodes.gpu-pool.cores[1]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass
class Document:
    """Plain data and where each piece of it was written."""

    data: Any
    file: str
    values: dict[PathT, Span] = field(default_factory=dict)
    keys: dict[PathT, Span] = field(default_factory=dict)

    def value_span(self, path: PathT) -> Span | None:
        """The span of the value at `path`, or of its nearest located ancestor."""
        probe = path
        while True:
            span = self.values.get(probe)
            if span is not None:
                return span
            if not probe:
                return None
            probe = probe[:-1]

    def key_span(self, path: PathT) -> Span | None:
        """The span of the key that introduces `path`, falling back to the value."""
        return self.keys.get(path) or self.value_span(path)
