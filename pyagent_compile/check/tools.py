"""`mcp` steps against the tools lock (PA331-PA335, PA338).

When a tools lock sits beside the spec, every `mcp` step's `tool: <server>.<method>` must name a
method its server listed, and the call's arguments (`arguments:` with the bound `inputs:` merged
over them, as the node passes them) must fit the method's input schema: nothing required
missing, nothing of the wrong type, nothing the schema forbids. Literal arguments are validated
by `jsonschema` against the schema the server gave; a bound input's value is known only at run
time, so only its type is compared with what the schema allows.

Without a lock nothing here runs: the check is opt-in and needs no server at compile time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pyagent_compile.check.context import CheckContext
from pyagent_compile.check.manifests import binding_type
from pyagent_compile.diagnostics import Diagnostic, Severity
from pyagent_compile.load.document import PathT
from pyagent_compile.model.spec import STEP_OUTPUT, Manifest, McpStep, Tool
from pyagent_compile.model.tools_lock import LockedServer, LockedTool, ToolsLock, canonical_sha256, tool_source
from pyagent_compile.suggest import did_you_mean

# The JSON type a bound input's value has when the node passes it as an argument; json and
# verdict values are any JSON, so nothing is known about them before run time.
JSON_TYPE_OF_VALUE = {
    "string": "string",
    "diff": "string",
    "trace": "string",
    "report": "string",
    "file": "string",
    "int": "integer",
    "bool": "boolean",
}


def check_tool_calls(ctx: CheckContext) -> list[Diagnostic]:
    lock = ctx.tools_lock
    if lock is None:
        return []
    locked = _locked_servers(ctx, lock)
    out = list(_stale_servers(ctx, lock, locked))
    for name, manifest in ctx.swarm.manifests.items():
        for index, step in enumerate(manifest.steps):
            if isinstance(step, McpStep):
                out += _step(ctx, locked, name, manifest, index, step)
    return out


def _locked_servers(ctx: CheckContext, lock: ToolsLock) -> dict[tuple[str, str], LockedServer]:
    """(core, server name) -> its lock entry, for the servers declared exactly as they were locked."""
    found: dict[tuple[str, str], LockedServer] = {}
    for core_name, core in ctx.swarm.cores.items():
        for tool in core.tools:
            digest = canonical_sha256(tool_source(tool))
            entry = next((s for s in lock.find(core_name, tool.name) if s.source_sha256 == digest), None)
            if entry is not None:
                found.setdefault((core_name, tool.name), entry)
    return found


def _stale_servers(
    ctx: CheckContext, lock: ToolsLock, locked: Mapping[tuple[str, str], LockedServer]
) -> Iterable[Diagnostic]:
    hint = "run `pyagent tools lock` for this spec and commit the lock"
    for core_name, core in ctx.swarm.cores.items():
        for index, tool in enumerate(core.tools):
            if (core_name, tool.name) in locked:
                continue
            path: PathT = ("cores", core_name, "tools", index, "name")
            if lock.find(core_name, tool.name):
                what = f"is declared differently ({_describe(tool)}) than when {ctx.tools_lock_display} was written"
            else:
                what = f"is not in {ctx.tools_lock_display}"
            yield _warning(
                ctx.problem(
                    "PA331",
                    path,
                    f"tool server {tool.name!r} of core {core_name!r} {what}; steps calling it are not checked",
                    hint,
                    label="not locked",
                )
            )


def _describe(tool: Tool) -> str:
    if tool.transport == "stdio":
        return "command " + " ".join(tool.command)
    return f"url {tool.url}" if tool.url is not None else f"port {tool.port}"


def _step(
    ctx: CheckContext,
    locked: Mapping[tuple[str, str], LockedServer],
    manifest_name: str,
    manifest: Manifest,
    index: int,
    step: McpStep,
) -> list[Diagnostic]:
    base: PathT = ("manifests", manifest_name, "steps", index)
    server_name, _, method = step.tool.partition(".")
    server = locked.get((manifest.core, server_name))
    if server is None:  # an unknown server is PA204 (check/references.py), an unlocked one PA331
        return []
    methods = sorted(server.tools)
    if not method:
        if len(methods) != 1:
            return [
                ctx.problem(
                    "PA338",
                    (*base, "tool"),
                    f"server {server_name!r} has {len(methods)} tools, so `tool:` must name one",
                    f"write `tool: {server_name}.<method>` with one of: {', '.join(methods) or '(none)'}",
                    label="which tool?",
                )
            ]
        method = methods[0]
    tool = server.tools.get(method)
    if tool is None:
        hint = (
            did_you_mean(method, methods)
            or _prefixed(method, methods)
            or f"{server_name} lists: {', '.join(methods) or '(nothing)'}"
        )
        return [
            ctx.problem(
                "PA332",
                (*base, "tool"),
                f"server {server_name!r} ({server.server.name} {server.server.version}) has no tool {method!r}",
                hint,
                label="not listed by the server",
            )
        ]
    call = f"{server_name}.{method}"
    outputs = {s.id: STEP_OUTPUT[s.kind] for s in manifest.steps}
    bound = {key: binding_type(b, manifest, outputs) for key, b in step.inputs.items()}
    return [
        *_missing(ctx, base, call, tool, step, bound),
        *_unknown_arguments(ctx, base, call, tool, step),
        *_literal_values(ctx, base, call, tool, step),
        *_bound_types(ctx, base, call, tool, bound),
    ]


def _prefixed(method: str, methods: list[str]) -> str:
    """Servers often prefix their tools (`git_commit`); a step naming the bare verb means it."""
    matches = [m for m in methods if m.endswith(f"_{method}") or m.endswith(f".{method}")]
    return f'did you mean "{matches[0]}"?' if len(matches) == 1 else ""


def _properties(tool: LockedTool) -> dict[str, Any]:
    properties = tool.input_schema.get("properties")
    return properties if isinstance(properties, dict) else {}


def _missing(
    ctx: CheckContext, base: PathT, call: str, tool: LockedTool, step: McpStep, bound: Mapping[str, str | None]
) -> Iterable[Diagnostic]:
    required = tool.input_schema.get("required")
    if not isinstance(required, list):
        return
    properties = _properties(tool)
    for name in required:
        if not isinstance(name, str) or name in step.arguments or name in bound:
            continue
        types = schema_types(properties.get(name, True))
        typed = f" ({' or '.join(sorted(types))})" if types else ""
        yield ctx.problem(
            "PA333",
            (*base, "tool"),
            f"{call} needs the argument {name!r}{typed}",
            f"add `{name}:` under `arguments:`, or bind it under `inputs:`",
            label=f"missing argument {name!r}",
        )


def _unknown_arguments(
    ctx: CheckContext, base: PathT, call: str, tool: LockedTool, step: McpStep
) -> Iterable[Diagnostic]:
    properties = _properties(tool)
    closed = tool.input_schema.get("additionalProperties") is False
    if not properties and not closed:
        return
    for section, names in (("arguments", list(step.arguments)), ("inputs", list(step.inputs))):
        for name in names:
            if name in properties:
                continue
            hint = did_you_mean(name, properties) or f"{call} takes: {', '.join(sorted(properties)) or 'nothing'}"
            diag = ctx.problem(
                "PA335",
                (*base, section, name),
                f"{call} takes no argument {name!r}",
                hint,
                label="not in the tool's input schema",
                on_key=True,
            )
            yield diag if closed else _warning(diag)


def _literal_values(ctx: CheckContext, base: PathT, call: str, tool: LockedTool, step: McpStep) -> Iterable[Diagnostic]:
    """Each literal argument that fails the schema, located at the offending (nested) value."""
    # Imported here: only specs with a tools lock and mcp steps need jsonschema, and start-up counts.
    from jsonschema.exceptions import SchemaError, UnknownType, best_match
    from jsonschema.validators import Draft202012Validator, validator_for
    from referencing.exceptions import Unresolvable

    literal = {k: v for k, v in step.arguments.items() if k not in step.inputs}
    if not literal:
        return
    try:
        validator = validator_for(tool.input_schema, default=Draft202012Validator)(tool.input_schema)
        errors = [e for e in validator.iter_errors(literal) if e.absolute_path]
    except (SchemaError, UnknownType, Unresolvable):
        return  # a schema the validator cannot use: the server will judge the call itself
    by_argument: dict[str, list[Any]] = {}
    for error in errors:
        by_argument.setdefault(str(error.absolute_path[0]), []).append(error)
    for argument in sorted(by_argument):
        error = best_match(by_argument[argument])
        where = tuple(error.absolute_path)
        yield ctx.problem(
            "PA334",
            (*base, "arguments", *where),
            f"{call}: argument {'.'.join(str(p) for p in where)!r}: {error.message}",
            _schema_hint(error.schema),
            label="does not match the tool's schema",
        )


def _schema_hint(schema: Any) -> str:
    types = schema_types(schema)
    if types:
        return f"the tool's schema asks for {' or '.join(sorted(types))}"
    return "see the tool's input schema in the tools lock"


def _bound_types(
    ctx: CheckContext, base: PathT, call: str, tool: LockedTool, bound: Mapping[str, str | None]
) -> Iterable[Diagnostic]:
    properties = _properties(tool)
    for name, value_type in bound.items():
        json_type = JSON_TYPE_OF_VALUE.get(value_type or "")
        types = schema_types(properties.get(name, True))
        if json_type is None or types is None or type_accepted(types, json_type):
            continue
        yield ctx.problem(
            "PA334",
            (*base, "inputs", name),
            f"{call}: argument {name!r} is bound to {_article(value_type)} {value_type} value, but the tool takes "
            f"{' or '.join(sorted(types))}",
            f"bind an input whose type gives {' or '.join(sorted(types))}",
            label=f"{_article(value_type)} {value_type} ({json_type} in JSON)",
        )


def _article(word: str | None) -> str:
    return "an" if (word or "x")[0] in "aeiou" else "a"


def type_accepted(types: set[str], json_type: str) -> bool:
    """Whether a value of `json_type` is one of `types` (JSON Schema: every integer is a number)."""
    return json_type in types or (json_type == "integer" and "number" in types)


def schema_types(schema: Any) -> set[str] | None:
    """The JSON types a (sub)schema admits, when the schema says so plainly; None when it does
    not constrain the type or says it in a way we do not follow ($ref, allOf, not)."""
    if not isinstance(schema, dict):
        return None  # `true`/`false` schemas: anything or nothing, nothing to name
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list) and all(isinstance(t, str) for t in declared):
        return set(declared)
    if "const" in schema:
        return {_json_type(schema["const"])}
    if isinstance(schema.get("enum"), list):
        return {_json_type(v) for v in schema["enum"]}
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            parts = [schema_types(option) for option in options]
            if any(part is None for part in parts):
                return None
            return set().union(*(part for part in parts if part is not None))
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _warning(diag: Diagnostic) -> Diagnostic:
    return replace(diag, severity=Severity.WARNING)
