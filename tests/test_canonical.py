"""Canonical serialisation: YAML and JSON that read back as exactly the data written."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pyagent_compile.canonical import to_json, to_yaml
from tests.conftest import ROOT

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.sampled_from(
        [
            "yes",
            "No",
            "on",
            "~",
            "null",
            "0777",
            "0x1f",
            "1e3",
            "1_000",
            "12:30:00",
            "2024-01-01",
            ".inf",
            "<<",
            "=",
            "- a",
            "? x",
            "a: b",
            "#c",
            "x #y",
            "a\nb",
            "a\nb\n",
            "a\n\n",
            "\tx",
            "é",
        ]
    ),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(json_like)
def test_yaml_reads_back_as_the_same_data(value: Any) -> None:
    assert yaml.safe_load(to_yaml(value)) == value


def no_floats(value: Any) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, list):
        return all(no_floats(v) for v in value)
    if isinstance(value, dict):
        return all(no_floats(v) for v in value.values())
    return True


@settings(max_examples=300, deadline=None)
@given(json_like)
def test_json_reads_back_and_matches_the_standard_library_layout(value: Any) -> None:
    assert json.loads(to_json(value)) == value
    if no_floats(value):
        assert to_json(value) == json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_rendered_manifests_read_back_as_the_plan() -> None:
    for plan_file in sorted((ROOT / "stacks").glob("*/*/plan.json")):
        plan = json.loads(plan_file.read_text())
        for entry in plan["objects"]:
            assert yaml.safe_load(to_yaml(entry["object"])) == entry["object"]
