"""YAML loading that keeps the line and column of every key and value.

We drive libyaml's event stream ourselves instead of composing a node graph, because:
- composing is recursive in C and a deeply nested input crashes the interpreter;
- events tell us where each alias is used, so alias expansion has a budget (no YAML bombs)
  and an error can point at the alias;
- events say whether a scalar was plain or quoted, so we resolve scalars by the YAML 1.2
  core schema (`no` and `on` stay strings, as in CUE and yaml-language-server);
- nothing is ever constructed from a tag: unknown tags are diagnostics.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from pyagent_compile.diagnostics import Diagnostic, Label, Span
from pyagent_compile.load.document import Document, PathT, format_path

MAX_DEPTH = 128
ALIAS_BUDGET = 100_000

_CORE = "tag:yaml.org,2002:"
_SCALAR_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "null": type(None),
}
_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")

try:  # libyaml's parser is an order of magnitude faster; fall back to pure Python.
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


class LoadError(Exception):
    """Stops the event walk; carries the diagnostic."""

    def __init__(self, diag: Diagnostic) -> None:
        super().__init__(diag.message)
        self.diag = diag


def resolve_plain(text: str) -> Any:
    """A plain scalar by the YAML 1.2 core schema."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _OCT.fullmatch(text):
        return int(text[2:], 8)
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


@dataclass
class _Frame:
    """An open mapping or sequence while walking events.

    A frame whose `merge_into` is set is the value of a `<<` merge key (a mapping, or a
    list of mappings): it is not placed in the tree but merged into that mapping.
    """

    value: dict[str, Any] | list[Any]
    path: PathT
    pending_key: str | None = None
    merge_into: _Frame | None = None
    awaiting_merge: bool = False
    merges: list[tuple[dict[str, Any], PathT]] = field(default_factory=list)


@dataclass
class _Anchor:
    value: Any
    path: PathT
    size: int


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.doc = Document(data=None, file=file)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: dict[str, PathT] = {}
        self.expanded = 0
        self.documents = 0
        self.root_set = False

    def span(self, event: Any) -> Span:
        start, end = event.start_mark, event.end_mark
        return Span(self.file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def fail(self, code: str, message: str, span: Span, help_: str = "", path: PathT = ()) -> None:
        raise LoadError(Diagnostic(code=code, message=message, path=format_path(path), primary=Label(span), help=help_))

    def feed(self, event: Any) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.fail(
                    "PA106",
                    "a spec holds one YAML document; this file has more",
                    self.span(event),
                    "split the documents into separate files",
                )
        elif isinstance(event, yaml.ScalarEvent):
            self.on_scalar(event)
        elif isinstance(event, yaml.MappingStartEvent):
            self.open_collection(event, {})
        elif isinstance(event, yaml.SequenceStartEvent):
            self.open_collection(event, [])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self.close_collection()
        elif isinstance(event, yaml.AliasEvent):
            self.on_alias(event)

    # -- where the next value goes ------------------------------------------------------
    def merge_target(self) -> _Frame | None:
        """The mapping that the next value merges into, if it is a `<<` value."""
        if not self.stack:
            return None
        top = self.stack[-1]
        if top.awaiting_merge:
            return top
        if isinstance(top.value, list) and top.merge_into is not None:
            return top.merge_into
        return None

    def next_path(self) -> PathT | None:
        """The path of the value about to be placed; None when it is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.pending_key is None:
            return None
        return (*top.path, top.pending_key)

    def check_tag(self, event: Any, kinds: tuple[str, ...]) -> None:
        tag = event.tag
        if tag is None or tag == "!":
            return
        if tag.startswith(_CORE) and tag[len(_CORE) :] in kinds:
            return
        shown = tag.replace(_CORE, "!!")
        self.fail(
            "PA104",
            f"the tag {shown} is not allowed",
            self.span(event),
            "remove the tag; specs use plain strings, numbers, booleans, lists and mappings",
        )

    # -- events -------------------------------------------------------------------------
    def on_scalar(self, event: Any) -> None:
        span = self.span(event)
        self.check_tag(event, ("str", "int", "float", "bool", "null"))
        if self.merge_target() is not None:
            self.fail("PA203", "a merge key `<<` takes a mapping or a list of mappings", span)
        value = self.scalar_value(event, span)
        path = self.next_path()
        if path is None:
            self.set_key(event, value, span)
            return
        self.place(value, path, span)
        if event.anchor:
            self.anchors[event.anchor] = _Anchor(value, path, 1)

    def scalar_value(self, event: Any, span: Span) -> Any:
        tag, text = event.tag, event.value
        if tag in (None, "!"):
            return resolve_plain(text) if event.implicit[0] else text
        kind = tag[len(_CORE) :]
        if kind == "str":
            return text
        value = resolve_plain(text)
        expected = _SCALAR_TYPES[kind]
        if not isinstance(value, expected) or (kind != "bool" and isinstance(value, bool)):
            self.fail("PA203", f"{text!r} is not a valid !!{kind}", span)
        return float(value) if kind == "float" else value

    def set_key(self, event: Any, key: Any, span: Span) -> None:
        top = self.stack[-1]
        assert isinstance(top.value, dict)
        if event.tag in (None, "!") and event.implicit[0] and event.value == "<<":
            top.awaiting_merge = True
            return
        if key is None:
            self.fail("PA108", "a mapping key must be a plain string, not null", span, path=top.path)
        name = event.value if isinstance(key, (int, float, bool)) else str(key)
        path = (*top.path, name)
        if name in top.value:
            first = self.doc.keys.get(path)
            secondary = (Label(first, "first defined here"),) if first else ()
            raise LoadError(
                Diagnostic(
                    code="PA102",
                    message=f"duplicate key {name!r}",
                    path=format_path(path),
                    primary=Label(span, "defined again here"),
                    secondary=secondary,
                    help="remove one of them; YAML would otherwise keep only the last",
                )
            )
        top.pending_key = name
        self.doc.keys[path] = span

    def open_collection(self, event: Any, value: dict[str, Any] | list[Any]) -> None:
        span = self.span(event)
        self.check_tag(event, ("map",) if isinstance(value, dict) else ("seq",))
        if len(self.stack) >= MAX_DEPTH:
            self.fail("PA103", f"values are nested more than {MAX_DEPTH} levels deep", span)
        target = self.merge_target()
        if target is not None:
            self.open_merge_source(event, value, target, span)
            return
        path = self.next_path()
        if path is None:
            self.fail(
                "PA108", "a mapping key must be a plain string, not a list or a mapping", span, path=self.stack[-1].path
            )
            return
        self.place(value, path, span)
        self.stack.append(_Frame(value, path))
        if event.anchor:
            self.open_anchors[event.anchor] = path

    def open_merge_source(self, event: Any, value: dict[str, Any] | list[Any], target: _Frame, span: Span) -> None:
        if isinstance(value, list) and not target.awaiting_merge:
            self.fail("PA203", "a merge key `<<` takes a mapping or a list of mappings", span)
        path = (*target.path, "<<", len(target.merges))
        self.doc.values[path] = span
        self.stack.append(_Frame(value, path, merge_into=target))
        target.awaiting_merge = False
        if event.anchor:
            self.open_anchors[event.anchor] = path

    def close_collection(self) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            self.apply_merges(frame)
        for name, path in list(self.open_anchors.items()):
            if path == frame.path:
                self.anchors[name] = _Anchor(frame.value, path, _size(frame.value))
                del self.open_anchors[name]
        if frame.merge_into is not None and isinstance(frame.value, dict):
            frame.merge_into.merges.append((frame.value, frame.path))

    def apply_merges(self, frame: _Frame) -> None:
        assert isinstance(frame.value, dict)
        for source, source_path in frame.merges:
            for key, value in source.items():
                if key in frame.value:
                    continue  # keys written in the mapping itself win over merged ones
                frame.value[key] = value
                self.copy_positions((*source_path, key), (*frame.path, key), include_root=True)

    def on_alias(self, event: Any) -> None:
        span = self.span(event)
        name = event.anchor
        if name in self.open_anchors:
            self.fail("PA103", f"the alias *{name} refers to a value that contains it", span)
        anchor = self.anchors.get(name)
        if anchor is None:
            self.fail("PA101", f"the alias *{name} has no anchor &{name} before it", span)
            return
        self.expanded += max(anchor.size, 1)
        if self.expanded > ALIAS_BUDGET:
            self.fail(
                "PA103",
                f"aliases expand to more than {ALIAS_BUDGET} values",
                span,
                "a spec does not need this many aliased values; is this a YAML bomb?",
            )
        target = self.merge_target()
        if target is not None:
            if not isinstance(anchor.value, dict):
                self.fail("PA203", "a merge key `<<` takes a mapping or a list of mappings", span)
            target.merges.append((anchor.value, anchor.path))
            target.awaiting_merge = False
            return
        path = self.next_path()
        if path is None:
            self.fail("PA108", "an alias cannot be used as a mapping key", span, path=self.stack[-1].path)
            return
        self.place(anchor.value, path, span)
        self.copy_positions(anchor.path, path, include_root=False)

    def copy_positions(self, source: PathT, target: PathT, include_root: bool) -> None:
        if source == target:
            return
        n = len(source)
        lowest = n if include_root else n + 1
        for table in (self.doc.values, self.doc.keys):
            moved = {target + p[n:]: s for p, s in table.items() if len(p) >= lowest and p[:n] == source}
            table.update(moved)

    def place(self, value: Any, path: PathT, span: Span) -> None:
        self.doc.values[path] = span
        if not self.stack:
            self.doc.data = value
            self.root_set = True
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
        else:
            assert top.pending_key is not None
            top.value[top.pending_key] = value
            top.pending_key = None


def _size(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_size(v) for v in value)
    return 1


def parse_yaml(text: str, file: str) -> tuple[Document | None, list[Diagnostic]]:
    """Parse one YAML document into a located Document, or return the diagnostic why not."""
    builder = _Builder(file)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except LoadError as err:
        return None, [err.diag]
    except yaml.MarkedYAMLError as err:
        return None, [_syntax_diagnostic(err, file, text)]
    except yaml.YAMLError as err:
        return None, [_reader_diagnostic(err, text, file)]
    except RecursionError:
        span = Span(file, 1, 1)
        return None, [Diagnostic("PA103", "the document is nested too deeply", primary=Label(span))]
    if not builder.root_set or builder.doc.data is None:
        return None, [
            Diagnostic(
                "PA106",
                "the spec is empty",
                primary=Label(Span(file, 1, 1)),
                help="a spec starts with `apiVersion: pyagent.dev/v1alpha1` and `kind: Swarm`",
            )
        ]
    return builder.doc, []


def _syntax_diagnostic(err: yaml.MarkedYAMLError, file: str, text: str) -> Diagnostic:
    mark = err.problem_mark or err.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = err.problem or "invalid YAML"
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        problem = "a tab character where YAML expects spaces"
    secondary: tuple[Label, ...] = ()
    if (
        err.context
        and err.context_mark is not None
        and (err.context_mark.line, err.context_mark.column)
        != (
            line - 1,
            col - 1,
        )
    ):
        ctx = err.context_mark
        secondary = (Label(Span(file, ctx.line + 1, ctx.column + 1), err.context),)
    help_ = _syntax_hint(problem)
    return Diagnostic("PA101", problem, primary=Label(Span(file, line, col)), secondary=secondary, help=help_)


def _syntax_hint(problem: str) -> str:
    if "tab" in problem:
        return "YAML indents with spaces only; replace the tab"
    if "mapping values are not allowed" in problem:
        return "a value containing `: ` must be quoted, or a key is indented too far"
    if "could not find expected ':'" in problem:
        return "is a `:` missing after a key, or a quote left open?"
    return "check the indentation and the quotes on this line and the one before"


def _reader_diagnostic(err: yaml.YAMLError, text: str, file: str) -> Diagnostic:
    position = getattr(err, "position", None)
    line, col = 1, 1
    if isinstance(position, int):
        before = text[:position]
        line = before.count("\n") + 1
        col = position - (before.rfind("\n") + 1) + 1
    return Diagnostic(
        "PA105",
        "the file contains a character YAML does not allow",
        primary=Label(Span(file, line, col)),
        help="remove control characters from the file",
    )
