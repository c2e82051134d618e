"""Canonical serialisation: the same data gives the same bytes on every machine.

JSON: sorted keys, two-space indent, UTF-8, LF, trailing newline.
YAML: sorted keys, block style, literal blocks for multi-line strings, no line folding.
"""

from __future__ import annotations

import json
from typing import Any

import yaml


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # repeated sub-objects are written out, never as &anchors


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and all(line == line.rstrip() for line in value.split("\n")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def to_yaml(value: Any) -> str:
    text = yaml.dump(
        value, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=2**31 - 1, indent=2
    )
    return str(text)
