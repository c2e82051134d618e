"""`pyagent schema` and `pyagent explain`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyagent_compile.canonical import to_json
from pyagent_compile.diagnostics.codes import CODES, explain
from pyagent_compile.model.gpus import catalog_table
from pyagent_compile.model.spec import Swarm

SCHEMA_ID = "https://pyagent.dev/schemas/swarm-v1alpha1.json"
SCENARIO_SCHEMA_ID = "https://pyagent.dev/schemas/scenario-v1alpha1.json"


def swarm_json_schema() -> dict[str, Any]:
    schema = Swarm.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def scenario_json_schema() -> dict[str, Any]:
    # Imported here: `pyagent schema` for the spec needs no scenario model.
    from pyagent_compile.model.scenario import Scenario

    schema = Scenario.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCENARIO_SCHEMA_ID, **schema}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the spec (for editors)",
        description="Print the JSON Schema of `kind: Swarm`. The same file is published "
        "as specs/swarm.schema.json; point yaml-language-server at it with "
        "`# yaml-language-server: $schema=<path>` on a spec's first line. With --scenario, the "
        "schema of `kind: Scenario` (specs/scenario.schema.json).",
    )
    schema.add_argument("--scenario", action="store_true", help="the scenario file's schema (docs/scenarios.md)")
    schema.set_defaults(run=run_schema)
    explain_cmd = sub.add_parser(
        "explain",
        help="explain an error code, e.g. PA204",
        description="Print what a diagnostic code means and how to fix it. `pyagent explain --list` lists every code.",
    )
    explain_cmd.add_argument("code", nargs="?")
    explain_cmd.add_argument("--list", action="store_true", help="list every code")
    explain_cmd.add_argument(
        "--format",
        choices=("text", "markdown"),
        default="text",
        help="with --list: markdown gives the table the README embeds",
    )
    explain_cmd.set_defaults(run=run_explain)


def run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(to_json(scenario_json_schema() if args.scenario else swarm_json_schema()))
    return 0


def code_listing() -> str:
    return "".join(f"{code}  {info.title}\n" for code, info in CODES.items())


def code_table_markdown() -> str:
    rows = ["| code | problem | exit |", "| --- | --- | --- |"]
    rows += [f"| {code} | {info.title} | {info.exit_code} |" for code, info in CODES.items()]
    return "\n".join(rows) + "\n"


def run_explain(args: argparse.Namespace) -> int:
    if args.list or not args.code:
        sys.stdout.write(code_table_markdown() if args.format == "markdown" else code_listing())
        return 0
    text = explain(args.code)
    if text is None:
        sys.stderr.write(f"error: unknown code {args.code!r}; `pyagent explain --list` lists them\n")
        return 2
    sys.stdout.write(text)
    if args.code.upper() == "PA302":
        sys.stdout.write("\nThe GPU catalog:\n" + catalog_table() + "\n")
    return 0
