"""Printing diagnostics in the format the user asked for; shared by every command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic, Diagnostics
from pyagent_compile.diagnostics.codes import exit_code_for
from pyagent_compile.diagnostics.machine import render_github, render_json
from pyagent_compile.diagnostics.sources import SourceCache
from pyagent_compile.diagnostics.text import render_text, summary_line

FORMATS = ("text", "json", "github")


def add_format_options(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    parser.add_argument(
        "--format",
        choices=formats,
        default="text",
        help="how to print problems: text for people, json for bots, github for workflow annotations (default: text)",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour text output (auto: only on a terminal and without NO_COLOR)",
    )


def use_colour(args: argparse.Namespace) -> bool:
    if args.color == "always":
        return True
    if args.color == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stderr.isatty()


def report(args: argparse.Namespace, diags: list[Diagnostic], files: int) -> int:
    """Print every problem, sorted, and a summary; return the exit code."""
    collected = Diagnostics(list(diags))
    ordered = collected.sorted()
    if args.format == "json":
        sys.stdout.write(render_json(ordered, collected.errors, collected.warnings))
    elif args.format == "github":
        sys.stdout.write(render_github(ordered))
    else:
        if ordered:
            sys.stderr.write(render_text(ordered, SourceCache(Path.cwd()), use_colour(args)) + "\n")
        if ordered or files > 1:
            sys.stderr.write(summary_line(collected.errors, collected.warnings, files) + "\n")
    return exit_code_for([d.code for d in ordered if d.severity.value == "error"])


def progress(args: argparse.Namespace, message: str) -> None:
    """A status line on a terminal; nothing when piped, so logs stay clean."""
    if args.format == "text" and sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[2K{message}")
        sys.stderr.flush()


def end_progress(args: argparse.Namespace) -> None:
    if args.format == "text" and sys.stderr.isatty():
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()
