"""Printing diagnostics in the format the user asked for; shared by every command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic, Diagnostics
from pyagent_compile.diagnostics.codes import exit_code_for
from pyagent_compile.diagnostics.sources import SourceCache
from pyagent_compile.diagnostics.text import render_text, summary_line

FORMATS = ("text", "json", "github", "sarif", "junit")


def add_format_options(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    parser.add_argument(
        "--format",
        choices=formats,
        default="text",
        help="how to print problems: text for people, json for bots, github for workflow annotations, "
        "sarif (2.1.0) for code scanning, junit for test reports (default: text)",
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


MACHINE_FORMATS = ("json", "github", "sarif", "junit")


def _output_file(text: str) -> tuple[str, Path]:
    fmt, sep, path = text.partition("=")
    if not sep or fmt not in MACHINE_FORMATS or not path:
        raise argparse.ArgumentTypeError(f"expected FORMAT=PATH with FORMAT one of {', '.join(MACHINE_FORMATS)}")
    return fmt, Path(path)


def add_output_files_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=_output_file,
        action="append",
        default=[],
        metavar="FORMAT=PATH",
        help="also write the same findings in FORMAT to PATH (repeatable), e.g. "
        "--output sarif=policy.sarif --output junit=policy.xml",
    )


def render(fmt: str, ordered: list[Diagnostic], collected: Diagnostics, passed: Sequence[str] = ()) -> str:
    """One machine rendering of sorted diagnostics. Each format's module is imported when asked
    for: editors and hooks run the CLI constantly, and most runs print text."""
    if fmt == "json":
        from pyagent_compile.diagnostics.machine import render_json

        return render_json(ordered, collected.errors, collected.warnings)
    if fmt == "github":
        from pyagent_compile.diagnostics.machine import render_github

        return render_github(ordered)
    if fmt == "sarif":
        from pyagent_compile.diagnostics.sarif import render_sarif

        return render_sarif(ordered)
    from pyagent_compile.diagnostics.junit import render_junit

    return render_junit(ordered, passed=passed)


def report(args: argparse.Namespace, diags: list[Diagnostic], files: int, passed: Sequence[str] = ()) -> int:
    """Print every problem, sorted, and a summary; return the exit code. `passed` names checks
    that ran clean, for the formats that list them (JUnit). `--output FORMAT=PATH` files, where a
    command offers them, get the same findings from the same run."""
    collected = Diagnostics(list(diags))
    ordered = collected.sorted()
    for fmt, path in getattr(args, "output", None) or ():
        path.write_text(render(fmt, ordered, collected, passed), encoding="utf-8")
    if args.format in MACHINE_FORMATS:
        sys.stdout.write(render(args.format, ordered, collected, passed))
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
