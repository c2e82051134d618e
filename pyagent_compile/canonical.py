"""Canonical serialisation: the same data gives the same bytes on every machine.

JSON: sorted keys, two-space indent, UTF-8, LF, trailing newline.
YAML: sorted keys, block style, literal blocks for multi-line strings, no line folding.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

import orjson
import yaml

from pyagent_compile.load.yaml import resolve_plain

_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def to_json(value: Any) -> str:
    """Sorted keys, two-space indent, UTF-8 as is, a trailing newline; orjson for speed
    (a 1000-pool plan is megabytes). Apart from how floats are spelled, its output equals
    `json.dumps(indent=2, sort_keys=True, ensure_ascii=False)`."""
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


# -- canonical YAML ------------------------------------------------------------------------------
# A serialiser for JSON-like data (dict with str keys, list, str, int, float, bool, None) that
# writes block style with sorted keys. PyYAML's representer costs ~0.7 ms per object, half of
# a 1000-pool compile; this writes the same style directly. Strings stay plain only when every
# YAML 1.1 and 1.2 resolver reads them back as strings (`yes`, `0777`, `1e3`, `2024-01-01` get
# quotes); anything unusual is double-quoted with JSON escapes, which YAML reads the same.
_SAFE_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*|[0-9][A-Za-z0-9_./@+-]*[A-Za-z_/@+][A-Za-z0-9_./@+-]*")
_YAML11: Any = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"
_INDENT = "  "


@functools.lru_cache(maxsize=65536)
def _scalar_str(value: str) -> str:
    plain = _SAFE_PLAIN.fullmatch(value) is not None
    # Plain only if YAML 1.1 (PyYAML, go-yaml v2 in kubectl) and the 1.2 core schema both read a string.
    if plain and _YAML11.resolve(yaml.ScalarNode, value, (True, False)) == _STR and resolve_plain(value) == value:
        return value
    return _UNPRINTABLE.sub(_escape, json.dumps(value, ensure_ascii=False))


# Characters a YAML reader refuses raw, or reads as a line break (NEL, LS, PS) or a BOM.
_UNPRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _scalar_str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text:  # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
        mantissa, _, exponent = text.partition("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _is_block_text(value: str) -> bool:
    """Multi-line text that a literal block (`|`) keeps exactly."""
    if "\n" not in value.rstrip("\n") or value.startswith((" ", "\n")):
        return False
    return all(line == line.rstrip() and line.isprintable() for line in value.split("\n"))


def _block_text(value: str, indent: str) -> str:
    chomp = "" if value.endswith("\n") and not value.endswith("\n\n") else ("-" if not value.endswith("\n") else "+")
    body = value[:-1] if value.endswith("\n") else value
    lines = [f"{indent}{line}" if line else "" for line in body.split("\n")]
    return f"|{chomp}\n" + "\n".join(lines) + "\n"


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Append the lines of a mapping or list (value not empty) at `indent`."""
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            prefix = f"{indent}{_scalar_str(key)}:"
            _emit_entry(prefix, item, indent, indent + _INDENT, out)
    else:
        for item in value:
            _emit_item(item, indent, out)


def _emit_entry(prefix: str, item: Any, indent: str, child: str, out: list[str]) -> None:
    if isinstance(item, dict) and item:
        out.append(prefix + "\n")
        _emit(item, child, out)
    elif isinstance(item, list) and item:
        out.append(prefix + "\n")
        _emit(item, indent, out)  # sequences in mappings are not indented (kubectl's style)
    elif isinstance(item, str) and _is_block_text(item):
        out.append(f"{prefix} {_block_text(item, child)}")
    else:
        out.append(f"{prefix} {_empty_or_scalar(item)}\n")


def _emit_item(item: Any, indent: str, out: list[str]) -> None:
    child = indent + _INDENT
    if isinstance(item, dict) and item:
        lines: list[str] = []
        _emit(item, child, lines)
        lines[0] = f"{indent}- {lines[0][len(child) :]}"
        out.extend(lines)
    elif isinstance(item, list) and item:
        lines = []
        _emit(item, child, lines)
        lines[0] = f"{indent}- {lines[0][len(child) :]}"
        out.extend(lines)
    elif isinstance(item, str) and _is_block_text(item):
        out.append(f"{indent}- {_block_text(item, child)}")
    else:
        out.append(f"{indent}- {_empty_or_scalar(item)}\n")


def _empty_or_scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def to_yaml(value: Any) -> str:
    if not isinstance(value, (dict, list)) or not value:
        return _empty_or_scalar(value) + "\n"
    out: list[str] = []
    _emit(value, "", out)
    return "".join(out)
