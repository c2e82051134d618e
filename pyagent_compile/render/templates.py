"""The Jinja templates of the text outputs (the Pulumi program, READMEs, the Dockerfile).
Structured files (YAML, JSON) are built as data, never from templates.

One environment per kind of output, made once per process: a compile of many environments
compiles each template once, not once per environment."""

from __future__ import annotations

import functools

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from pyagent_compile import resources


@functools.cache
def _environment(kind: str) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(resources.templates(kind))),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def template(kind: str, name: str) -> Template:
    """`templates/<kind>/<name>`, compiled on first use (Jinja's own cache keeps it)."""
    return _environment(kind).get_template(name)
