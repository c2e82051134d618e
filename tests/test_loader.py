"""The YAML loader: positions of keys and values, YAML 1.2 scalars, merge keys, and every
hostile input turned into a diagnostic."""

from __future__ import annotations

import math

import pytest

from pyagent_compile.load.yaml import parse_yaml, resolve_plain


def load(text: str) -> object:
    doc, diags = parse_yaml(text, "t.yaml")
    assert not diags, diags
    assert doc is not None
    return doc.data


def codes(text: str) -> list[str]:
    _, diags = parse_yaml(text, "t.yaml")
    return [d.code for d in diags]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("12", 12),
        ("-3", -3),
        ("0x1f", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("08", 8),
        ("1_000", "1_000"),
        ("2Gi", "2Gi"),
        ("", None),
    ],
)
def test_plain_scalars_follow_the_yaml_1_2_core_schema(text: str, value: object) -> None:
    assert resolve_plain(text) == value


def test_special_floats() -> None:
    assert resolve_plain(".inf") == math.inf
    assert resolve_plain("-.Inf") == -math.inf
    assert math.isnan(resolve_plain(".nan"))


def test_quoted_scalars_stay_strings() -> None:
    assert load("a: '12'\nb: \"true\"\n") == {"a": "12", "b": "true"}


def test_positions_of_keys_and_values_are_one_based() -> None:
    doc, _ = parse_yaml("top:\n  list: [a, bb]\n  key: value\n", "t.yaml")
    assert doc is not None
    assert (doc.values[("top", "list", 1)].line, doc.values[("top", "list", 1)].col) == (2, 13)
    assert (doc.keys[("top", "key")].line, doc.keys[("top", "key")].col) == (3, 3)
    assert doc.values[("top", "list", 1)].end_col == 15


def test_merge_keys_merge_and_explicit_keys_win() -> None:
    data = load("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\nn:\n  <<: [*b, {z: 4}]\n")
    assert data == {"base": {"x": 1, "y": 2}, "m": {"x": 1, "y": 3}, "n": {"x": 1, "y": 2, "z": 4}}


def test_aliased_values_point_at_their_anchor() -> None:
    doc, _ = parse_yaml("a: &x {k: 1}\nb: *x\n", "t.yaml")
    assert doc is not None and doc.values[("b", "k")].line == 1


def test_duplicate_keys_name_both_places() -> None:
    _, diags = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n", "t.yaml")
    assert [d.code for d in diags] == ["PA102"]
    assert diags[0].span is not None and diags[0].span.line == 4
    assert diags[0].secondary[0].span.line == 3


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("a: !!python/object/apply:os.system ['true']\n", "PA104"),
        ("a: !Ref x\n", "PA104"),
        ("a: !!binary aGk=\n", "PA104"),
        ("a: !!set {x}\n", "PA104"),
        ("a: &a [*a]\n", "PA103"),
        ("a: *nowhere\n", "PA101"),
        ("[" * 5000 + "]" * 5000, "PA103"),
        ("a: [1\n", "PA101"),
        ("a: 1\n---\nb: 2\n", "PA106"),
        ("", "PA106"),
        ("# only a comment\n", "PA106"),
        ("? [a]\n: 1\n", "PA108"),
        ("~: 1\n", "PA108"),
        ("a: !!int x\n", "PA203"),
        ("a: \x07\n", "PA105"),
    ],
)
def test_hostile_or_broken_yaml_is_a_diagnostic(text: str, code: str) -> None:
    assert codes(text) == [code]


def test_alias_bomb_is_stopped_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    assert codes("\n".join(lines) + "\n") == ["PA103"]


def test_deep_nesting_does_not_crash_the_interpreter() -> None:
    assert codes("[" * 200_000 + "]" * 200_000) == ["PA103"]
