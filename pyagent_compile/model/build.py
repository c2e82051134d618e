"""Stage 2: validate located data into the typed Swarm model.

Pydantic's errors are translated into pyagent diagnostics: each one gets a stable code, the
dotted spec path, the file:line:col of the offending key or value, and a hint ("did you
mean" by edit distance for unknown keys and words).
"""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pyagent_compile.diagnostics import Diagnostic, Label, Span
from pyagent_compile.load.document import Document, PathT, format_path
from pyagent_compile.model.spec import API_VERSION, Swarm
from pyagent_compile.suggest import did_you_mean

_TYPE_CODES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}
_RANGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long"}


def build_swarm(doc: Document) -> tuple[Swarm | None, list[Diagnostic]]:
    return build_model(doc, Swarm, API_VERSION, "Swarm")


ModelT = TypeVar("ModelT", bound=BaseModel)


def build_model(
    doc: Document, root: type[ModelT], api_version: str, kind: str
) -> tuple[ModelT | None, list[Diagnostic]]:
    """Validate a located document into `root` (a spec, a scenario), with located diagnostics."""
    if not isinstance(doc.data, dict):
        span = doc.value_span(()) or Span(doc.file, 1, 1)
        return None, [
            Diagnostic(
                "PA109",
                f"the {'spec' if kind == 'Swarm' else kind.lower()} is {_describe(doc.data)}, not a mapping",
                primary=Label(span),
                help=f"a {'spec' if kind == 'Swarm' else kind.lower()} starts with `apiVersion:` and `kind:` keys",
            )
        ]
    header = _check_header(doc, api_version, kind)
    if header:
        return None, header
    try:
        return root.model_validate(doc.data), []
    except ValidationError as exc:
        return None, _diagnostics(exc.errors(include_url=False), doc, root)


def _diagnostics(errors: list[ErrorDetails], doc: Document, root: type[BaseModel] = Swarm) -> list[Diagnostic]:
    """A field that accepts several types (`cpu: 2`, `cpu: 2.5`, `cpu: "500m"`) fails once per
    type it accepts; that is one mistake, so it gives one PA203 naming every accepted type."""
    accepted: dict[PathT, list[str]] = {}
    for err in errors:
        if err["type"] in _TYPE_CODES:
            names = accepted.setdefault(resolve_loc(err["loc"], doc.data)[0], [])
            if _TYPE_CODES[err["type"]] not in names:
                names.append(_TYPE_CODES[err["type"]])
    diags, typed = [], set()
    for err in errors:
        if err["type"] in _TYPE_CODES:
            path = resolve_loc(err["loc"], doc.data)[0]
            if path in typed:
                continue
            typed.add(path)
        diags.append(_to_diagnostic(err, doc, accepted, root))
    return diags


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _check_header(doc: Document, api_version: str = API_VERSION, kind: str = "Swarm") -> list[Diagnostic]:
    """A wrong apiVersion or kind makes every other error noise, so it is reported alone."""
    diags = []
    for key, want in (("apiVersion", api_version), ("kind", kind)):
        got = doc.data.get(key)
        if got is not None and got != want:
            span = doc.value_span((key,)) or Span(doc.file, 1, 1)
            diags.append(
                Diagnostic(
                    "PA207",
                    f"unsupported {key} {got!r}",
                    path=key,
                    primary=Label(span),
                    help=f"this pyagent reads `{key}: {want}`",
                )
            )
    return diags


def resolve_loc(loc: tuple[int | str, ...], data: Any) -> tuple[PathT, bool]:
    """Map a pydantic error location onto a path in the data.

    Pydantic adds parts that are not in the data (discriminator tags, validator names);
    they are skipped. Returns the path and whether the last part was a dict key marker.
    """
    path: list[str | int] = []
    node = data
    is_key = False
    for part in loc:
        if part == "[key]":
            is_key = True
            continue
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part == loc[-1]:
            path.append(part)  # a missing or unknown field: the last part names it
            node = None
    return tuple(path), is_key


def _to_diagnostic(
    err: ErrorDetails, doc: Document, accepted: dict[PathT, list[str]], root: type[BaseModel] = Swarm
) -> Diagnostic:
    path, is_key = resolve_loc(err["loc"], doc.data)
    kind = err["type"]
    shown = format_path(path)
    if kind == "extra_forbidden":
        allowed = _allowed_fields(path[:-1], doc.data, root)
        hint = did_you_mean(str(path[-1]), allowed)
        listing = ", ".join(sorted(allowed))
        return _diag(
            "PA201", f"unknown field {path[-1]!r}", shown, doc.key_span(path), hint or f"allowed here: {listing}"
        )
    if kind == "missing":
        parent = path[:-1]
        return _diag(
            "PA202",
            f"missing required field {path[-1]!r}",
            shown,
            doc.key_span(parent) if parent else doc.value_span(()),
            "",
        )
    span = doc.key_span(path) if is_key else doc.value_span(path)
    if kind == "pyagent_invalid":
        return _diag("PA206", err["msg"], shown, span, "")
    if kind == "union_tag_invalid":
        kind_path = (*path, "kind")
        return _choice_diagnostic(err, format_path(kind_path), doc.value_span(kind_path))
    if kind == "literal_error":
        return _choice_diagnostic(err, shown, span)
    if kind == "union_tag_not_found":
        return _diag(
            "PA202",
            "missing required field 'kind'",
            shown,
            span,
            "a step's kind is one of: sandbox, analyze-trace, cort, verify, mcp, delegate",
        )
    if kind in _RANGE:
        return _diag("PA205", _range_message(err), shown, span, "")
    if kind in _TYPE_CODES:
        return _diag(
            "PA203",
            f"expected {_one_of(accepted.get(path, [_TYPE_CODES[kind]]))}, found {_describe(err['input'])}",
            shown,
            span,
            _type_hint(kind, err["input"]),
        )
    return _diag("PA206", err["msg"], shown, span, "")


def _diag(code: str, message: str, path: str, span: Span | None, help_: str) -> Diagnostic:
    return Diagnostic(code, message, path=path, primary=Label(span) if span else None, help=help_)


def _choice_diagnostic(err: ErrorDetails, shown: str, span: Span | None) -> Diagnostic:
    ctx = err.get("ctx", {})
    given = ctx.get("tag", err["input"])
    expected = str(ctx.get("expected") or ctx.get("expected_tags") or "")
    choices = [c.strip().strip("'\"") for c in expected.replace(" or ", ",").split(",") if c.strip()]
    hint = did_you_mean(str(given), choices) if isinstance(given, str) else ""
    return _diag("PA206", f"{given!r} is not one of: {', '.join(choices)}", shown, span, hint)


def _range_message(err: ErrorDetails) -> str:
    ctx = err.get("ctx", {})
    if err["type"] == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if err["type"] == "too_long":
        return f"takes at most {ctx.get('max_length')} item(s)"
    bound = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[err["type"]]
    limit = next(iter(ctx.values()), "?")
    return f"{err['input']!r} is out of range: must be {bound} {limit}"


def _type_hint(kind: str, value: Any) -> str:
    if kind in ("int_type", "float_type") and isinstance(value, str):
        return "remove the quotes to write a number"
    if kind == "string_type" and isinstance(value, (int, float, bool)):
        return "quote the value to make it a string"
    return ""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# -- which fields are allowed at a path (for "did you mean") ------------------------------------------
def _allowed_fields(path: PathT, data: Any, root: type[BaseModel] = Swarm) -> list[str]:
    annotation: Any = root
    node = data
    for part in path:
        annotation = _step_into(annotation, part, node)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        if annotation is None:
            return []
    model = _model_of(annotation, node)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _step_into(annotation: Any, part: str | int, node: Any) -> Any:
    model = _model_of(annotation, node)
    if model is not None and isinstance(part, str):
        for name, info in model.model_fields.items():
            if (info.alias or name) == part:
                return info.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and args:
        return args[1]
    if origin is list and args:
        return args[0]
    return None


def _model_of(annotation: Any, node: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0], node)
    if origin in (typing.Union, types.UnionType):
        candidates = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        kind = node.get("kind") if isinstance(node, dict) else None
        for candidate in candidates:
            tag = candidate.model_fields.get("kind")
            if tag is not None and typing.get_args(tag.annotation) == (kind,):
                return candidate
        return candidates[0] if len(candidates) == 1 else None
    return None


__all__ = ["build_model", "build_swarm", "resolve_loc"]
