"""Stage 1: read spec files into located documents (data + source positions).

`load_document` picks the reader by the file's suffix; every reader returns the same
`Document` so later stages never know which language a spec was written in.
"""

from __future__ import annotations

from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic, Label, Span
from pyagent_compile.load.document import Document, PathT, format_path
from pyagent_compile.load.text import read_text
from pyagent_compile.load.yaml import parse_yaml

YAML_SUFFIXES = (".yaml", ".yml")
CUE_SUFFIX = ".cue"


def load_document(path: Path, display: str) -> tuple[Document | None, list[Diagnostic]]:
    """Load one spec file (or a directory holding a CUE package).

    `display` is the path shown in diagnostics and source maps.
    """
    if path.suffix == CUE_SUFFIX or (path.is_dir() and any(path.glob("*.cue"))):
        # Imported here: the CUE reader builds #Swarm from the models and runs `cue`; a YAML
        # spec needs neither, and start-up counts (benchmarks/compile_bench.py).
        from pyagent_compile.load.cue import load_cue

        return load_cue(path, display)
    if path.is_dir():
        return None, [
            Diagnostic(
                "PA100",
                f"{display} is a directory, not a spec file",
                primary=Label(Span(display, 1, 1)),
                help="name the spec file inside it, e.g. swarm.yaml (a directory is read as a CUE package)",
            )
        ]
    if path.suffix in YAML_SUFFIXES:
        text, diags = read_text(path, display)
        if text is None:
            return None, diags
        return parse_yaml(text, display)
    return None, [
        Diagnostic(
            "PA110",
            f"{display}: cannot tell the spec format from the suffix {path.suffix!r}",
            primary=Label(Span(display, 1, 1)),
            help="name the file swarm.yaml (or .yml), or swarm.cue for a CUE spec",
        )
    ]


__all__ = ["CUE_SUFFIX", "YAML_SUFFIXES", "Document", "PathT", "format_path", "load_document"]
