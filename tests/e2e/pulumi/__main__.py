"""python -m tests.e2e.pulumi tools|runtime STACK_DIR

tools    builds the Pulumi CLI, the Kubernetes provider and the Python language host (v3.68.0, from the
         sdk/v3 module) into .tools/ (see tools.py, docs/pulumi.md), and asks the Go module proxy for the
         language host's own module at the CLI's version, printing its answer.
runtime  serves a stack's program as a LanguageRuntime for `pulumi ... --client` (see runtime.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.e2e.pulumi import runtime, tools, versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.e2e.pulumi", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["tools", "runtime"])
    parser.add_argument("program", nargs="?", help="runtime: the stack folder whose __main__.py to run")
    parser.add_argument(
        "--skip-await", action="append", default=[], metavar="TYPE", help="runtime: add pulumi.com/skipAwait to TYPE"
    )
    args = parser.parse_args(argv)
    if args.command == "runtime":
        if not args.program:
            parser.error("runtime needs a STACK_DIR")
        runtime.serve(Path(args.program), tuple(args.skip_await))
        return 0
    try:
        tools.build_all()
    except tools.ToolError as e:
        print(f"pulumi tools: {e}", file=sys.stderr)
        return 1
    for tool in tools.GO_BUILDS:
        built = tool.home / "built.json"
        timings = json.loads(built.read_text()) if built.exists() else {}
        print(f"{tool.name} {tool.version}: {tool.bin} (built in s: {timings})")
    source, refusals = tools.language_host()
    if source is None:
        module = versions.LANGUAGE_HOST_MODULE
        print(f"pulumi-language-python at the CLI's version: the Go module proxy refuses {module}:")
        for r in refusals:
            print(f"  @{r.version}: {r.answer}")
    else:
        print(f"pulumi-language-python: the proxy now serves its own module ({source}): build that one instead")
    return 0


if __name__ == "__main__":
    sys.exit(main())
