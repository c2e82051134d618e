"""CUE specs, evaluated by the real `cue` evaluator, with every value's source position.

Two programs run side by side on the same input (a `.cue` file, or a directory holding a
CUE package):

- `cue export --out json -E` (the pinned `cue` CLI) gives the values, or CUE's errors;
- `cuepos` (specs/cuepos, built against the same cuelang.org/go module) prints where each
  value was written, so pyagent's later checks point at .cue lines. When the spec is not
  already closed by `#Swarm` (the schema embedded beside other fields, or not imported),
  it also unifies it with the `#Swarm` generated from pyagent's own models, so unknown
  fields are CUE errors either way.

The schema comes from the model stage (model/cue_schema.py generates it from the pydantic
models), the one place the loader looks ahead in the pipeline: a CUE spec is checked
against the schema while it is evaluated.

CUE's errors are turned into pyagent diagnostics: a code by kind of problem, the spec
path, and every position CUE reports (the value, the other value it conflicts with, and
the constraint in the schema).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic, Label, Severity, Span
from pyagent_compile.load.document import Document, PathT, format_path
from pyagent_compile.model.cue_schema import SCALARS, generate
from pyagent_compile.suggest import did_you_mean

CUE_ENV = "PYAGENT_CUE"
CUEPOS_ENV = "PYAGENT_CUEPOS"
CUE_VERSION = "v0.17.1"  # kept in step with .ci/install-cue.sh and specs/cuepos/go.mod
SCHEMA_DISPLAY = "pyagent.dev/swarm/swarm.cue"
TIMEOUT_S = 300
INSTALL_HELP = (
    f"install it with `.ci/install-cue.sh` (it runs `go install cuelang.org/go/cmd/cue@{CUE_VERSION}` "
    f"and builds specs/cuepos into .tools/bin) and put .tools/bin on PATH, or set {CUE_ENV} "
    f"(and {CUEPOS_ENV}) to the binaries; YAML specs work without it"
)


# -- finding the binaries ---------------------------------------------------------------------
def find_cue() -> str | None:
    """`$PYAGENT_CUE`, else `cue` on PATH."""
    explicit = os.environ.get(CUE_ENV)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("cue")


def find_cuepos(cue: str) -> str | None:
    """`$PYAGENT_CUEPOS`, else `cuepos` beside the cue binary, else on PATH."""
    explicit = os.environ.get(CUEPOS_ENV)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    beside = Path(cue).parent / "cuepos"
    return str(beside) if beside.is_file() else shutil.which("cuepos")


@lru_cache(maxsize=1)
def schema_text() -> str:
    return generate()


# -- loading ------------------------------------------------------------------------------------
def load_cue(path: Path, display: str) -> tuple[Document | None, list[Diagnostic]]:
    """Evaluate a `.cue` file or a directory with a CUE package into a located Document."""
    if not path.exists():
        return None, [Diagnostic("PA100", f"{display}: no such file or directory")]
    cue = find_cue()
    cuepos = find_cuepos(cue) if cue else None
    if cue is None or cuepos is None:
        missing = "cue" if cue is None else "cuepos"
        return None, [
            Diagnostic(
                "PA125",
                f"{display}: the `{missing}` program is needed to read CUE specs and was not found",
                help=INSTALL_HELP,
            )
        ]
    if path.is_dir():
        workdir, target, file_display, dir_display = path, ".", _first_cue_file(path, display), display
    else:
        workdir, target, file_display = path.parent, f"./{path.name}", display
        dir_display = posixpath.dirname(display)
    run = _Run(workdir.resolve(), dir_display)
    started: list[subprocess.Popen[str]] = []
    # Go's collector takes about half the evaluators' CPU on a large spec at its default
    # (GOGC=100); 400 halves cuepos's CPU for ~1.6x the memory (740 MB for 1000 pools).
    env = {**os.environ, "GOGC": os.environ.get("GOGC", "400")}
    try:
        export = subprocess.Popen(
            [cue, "export", "--out", "json", "-E", target],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(export)
        located = subprocess.Popen(
            [cuepos, "-schema", "-", target],
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(located)
        pos_out, pos_err = located.communicate(schema_text(), timeout=TIMEOUT_S)
        out, err = export.communicate(timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        for process in started:
            process.kill()
            process.wait()
        return None, [Diagnostic("PA129", f"{display}: running the CUE evaluator failed: {exc}", help=INSTALL_HELP)]
    doc = Document(None, file_display)
    try:  # cuepos prints the positions even when the value has errors
        positions = json.loads(pos_out) if pos_out.strip() else {}
    except json.JSONDecodeError:
        positions = {}
    for raw_path, file, line, col in positions.get("values") or []:
        if run.display(file) is not None:
            at = tuple(raw_path or ())
            doc.values[at] = run.span(file, line, col)
            if at and isinstance(at[-1], str) and (key := run.label_before(file, line, col, at[-1])):
                doc.keys[at] = key
    run.located = doc
    notes = _stale_vendored_schema(run) + ([] if path.is_dir() else _siblings_not_read(path, display))
    if export.returncode != 0:
        return None, (errors_to_diagnostics(err, run) or [_opaque(display, err)]) + notes
    if located.returncode != 0:
        return None, (errors_to_diagnostics(pos_err, run) or [_opaque(display, pos_err)]) + notes
    try:
        doc.data = json.loads(out)
    except json.JSONDecodeError as exc:
        return None, [Diagnostic("PA129", f"{display}: unexpected output from the CUE evaluator: {exc}")]
    if () not in doc.values:
        doc.values[()] = Span(file_display, 1, 1)
    return doc, notes


def _stale_vendored_schema(run: _Run) -> list[Diagnostic]:
    """A warning when the user's vendored copy of the schema differs from this pyagent's."""
    for folder in (run.workdir, *run.workdir.parents):
        if (folder / "cue.mod" / "module.cue").is_file():
            vendored = folder.joinpath("cue.mod", "pkg", "pyagent.dev", "swarm", "swarm.cue")
            try:
                text = vendored.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return []
            if text == schema_text():
                return []
            shown = run.display(str(vendored)) or str(vendored)
            return [
                Diagnostic(
                    "PA127",
                    "the vendored pyagent.dev/swarm schema differs from this pyagent's",
                    severity=Severity.WARNING,
                    primary=Label(Span(shown, 1, 1)),
                    help=f"refresh it: python -m pyagent_compile.model.cue_schema --vendor {folder} "
                    "(pyagent checks with its own schema in any case)",
                )
            ]
    return []


_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w]*)", re.M)


def _siblings_not_read(path: Path, display: str) -> list[Diagnostic]:
    """A warning when the file is one of several of a package: `cue export FILE` reads only it."""

    def package(file: Path) -> str | None:
        try:
            match = _PACKAGE.search(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None
        return match[1] if match else None

    own = package(path)
    if own is None:
        return []
    others = sorted(p.name for p in path.parent.glob("*.cue") if p != path and package(p) == own)
    if not others:
        return []
    folder = posixpath.dirname(display) or "."
    return [
        Diagnostic(
            "PA128",
            f"only {path.name} was read; {', '.join(others)} of package {own} beside it were not",
            severity=Severity.WARNING,
            primary=Label(Span(display, 1, 1)),
            help=f"to unify the whole package (e.g. one file per environment), compile the folder: {folder}",
        )
    ]


def _first_cue_file(directory: Path, display: str) -> str:
    names = sorted(p.name for p in directory.glob("*.cue"))
    return posixpath.join(display, names[0]) if names else display


def _opaque(display: str, text: str) -> Diagnostic:
    return Diagnostic("PA129", f"{display}: the CUE evaluator failed: {text.strip() or 'no message'}")


@dataclass
class _Run:
    """Where a run happened, to turn the paths CUE prints into the paths users see."""

    workdir: Path
    display_dir: str
    located: Document | None = None
    _lines: dict[str, list[str]] = field(default_factory=dict)
    _shown: dict[str, str | None] = field(default_factory=dict)

    def display(self, file: str) -> str | None:
        if file not in self._shown:
            self._shown[file] = self._display(file)
        return self._shown[file]

    def _display(self, file: str) -> str | None:
        if file == "pyagent-schema.cue":
            return None  # a default of pyagent's own schema: nothing the user wrote
        path = Path(file)
        if not path.is_absolute():
            path = self.workdir / path
        rel = os.path.relpath(path, self.workdir).replace(os.sep, "/")
        return posixpath.normpath(posixpath.join(self.display_dir, rel)) if self.display_dir else rel

    def span(self, file: str, line: int, col: int) -> Span:
        shown = self.display(file)
        if shown is None:
            return Span(SCHEMA_DISPLAY, line, col)
        end = self.token_end(file, line, col)
        return Span(shown, line, col, line, end) if end else Span(shown, line, col)

    def lines(self, file: str) -> list[str]:
        if file not in self._lines:
            path = Path(file) if Path(file).is_absolute() else self.workdir / file
            try:
                self._lines[file] = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                self._lines[file] = []
        return self._lines[file]

    def label_before(self, file: str, line: int, col: int, key: str) -> Span | None:
        """The span of the label `key:` written just before the value at line:col, if it is there."""
        lines = self.lines(file)
        if not 0 < line <= len(lines):
            return None
        match = _LABEL_BEFORE.search(lines[line - 1][: col - 1])
        if match is None or _unquote(match["label"]) != key:
            return None
        shown = self.display(file)
        start = match.start("label") + 1
        return Span(shown, line, start, line, match.end("label") + 1) if shown else None

    def token_end(self, file: str, line: int, col: int) -> int:
        """The column just past the literal, label or name that starts at line:col (0 if unknown)."""
        lines = self.lines(file)
        if not 0 < line <= len(lines):
            return 0
        match = _TOKEN.match(lines[line - 1], col - 1)
        return match.end() + 1 if match else 0


# -- CUE's error text -> diagnostics ----------------------------------------------------------------
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|(?:[<>]=?|!=|=~|!~)?[-+]?[\w.#]+(?:\([^()]*\))?|\[[^\[\]]*\]|\{[^{}]*\}')
_LABEL_BEFORE = re.compile(r'(?P<label>"(?:[^"\\]|\\.)*"|[A-Za-z_$#][\w$#-]*)[?!]?\s*:\s*$')
_POS = re.compile(r"^\s+(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)$")
_HEAD = re.compile(r"^(?:(?P<path>(?:[^\s:\"]|\"(?:[^\"\\]|\\.)*\")+): )?(?P<msg>.*?):?$")
_DISJ = re.compile(r"^\d+ errors in empty disjunction$")
_CONFLICT = re.compile(
    r"^conflicting values (?P<a>.+?) and (?P<b>.+?)(?: \(mismatched types (?P<ta>\w+) and (?P<tb>\w+)\))?$"
)
_BOUND = re.compile(r"^invalid value (?P<v>.+?) \(out of bound (?P<bound>.+)\)$")
_MATCH = re.compile(
    r"^invalid value (?P<v>.+?) \(does not (?:match|satisfy) (?P<c>[^()]+(?:\([^()]*\))?)\)(?P<why>.*)$"
)
_FIELD_REF = re.compile(r"^undefined field: (?P<name>.+)$")
_TYPE_NAMES = {"int", "float", "number", "string", "bool", "bytes", "null", "struct", "list", "_"}
_REF = re.compile(r'^reference "(?P<name>[^"]+)" not found$')
_SYNTAX = re.compile(r"expected|illegal|missing ',|string literal not terminated|unexpected")
_TYPE_WORDS = {
    "string": "a string",
    "int": "an integer",
    "float": "a number",
    "number": "a number",
    "bool": "true or false",
    "struct": "a mapping",
    "list": "a list",
    "null": "null",
}


@dataclass
class CueError:
    """One error as CUE prints it: `path: message:` then one indented position per line.

    `N errors in empty disjunction` heads a group: the errors of each alternative follow it.
    """

    path: str
    message: str
    positions: list[tuple[str, int, int]] = field(default_factory=list)
    children: list[CueError] = field(default_factory=list)

    @property
    def is_group(self) -> bool:
        return bool(_DISJ.match(self.message))


def parse_errors(text: str) -> list[CueError]:
    """CUE's error text as a tree: groups (empty disjunctions) hold their alternatives' errors."""
    top: list[CueError] = []
    stack: list[CueError] = []
    last: CueError | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        pos = _POS.match(line)
        if pos and last is not None:
            last.positions.append((pos["file"], int(pos["line"]), int(pos["col"])))
            continue
        head = _HEAD.match(line.strip())
        path = (head["path"] or "") if head else ""
        message = head["msg"] if head else line.strip()
        if path.startswith("#Swarm"):
            path = path[len("#Swarm") :].lstrip(".")  # cuepos's unification adds the definition's name
        error = CueError(path, message)
        while stack and not _under(path, stack[-1].path):
            stack.pop()
        (stack[-1].children if stack else top).append(error)
        if error.is_group:
            stack.append(error)
        last = error
    return top


def split_path(cue_path: str) -> PathT:
    """`nodes."cpu-workers".roles.1` -> ("nodes", "cpu-workers", "roles", 1)."""
    parts: list[str | int] = []
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"|([^.]+)', cue_path):
        if match[1] is not None:
            parts.append(json.loads(f'"{match[1]}"'))
        elif match[2].isdigit():
            parts.append(int(match[2]))
        else:
            parts.append(match[2])
    return tuple(parts)


def errors_to_diagnostics(text: str, run: _Run) -> list[Diagnostic]:
    errors = parse_errors(text)
    plain = {e.path for e in errors if not e.is_group}
    diags: list[Diagnostic] = []
    seen: set[tuple[str, str, str]] = set()
    for error in errors:
        diag = _group_diagnostic(error, run, plain) if error.is_group else _diagnostic(error, run)
        if diag is None:
            continue
        key = (diag.code, diag.path, diag.message)
        if key not in seen:
            seen.add(key)
            diags.append(diag)
    return diags


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or not prefix


def _group_diagnostic(head: CueError, run: _Run, plain: set[str]) -> Diagnostic | None:
    """An empty disjunction: no alternative of `*default | type`, or of a set of words, fits.

    CUE lists every alternative's error; the default's (`*["worker"]`) is noise. The most
    specific part is the innermost disjunction (the word in a list that is not allowed), and
    when CUE also reported the failure of the non-default alternative on its own, that is used.
    """
    if head.path in plain:
        return None
    nested = [c for c in head.children if c.is_group]
    if nested:
        return _group_diagnostic(nested[0], run, plain)
    members = head.children
    if not members:
        return _diagnostic(head, run)
    target = members[0]
    conflicts = [m for m in (_CONFLICT.match(e.message) for e in members) if m]
    positions = [p for e in members for p in e.positions]
    if conflicts and len(conflicts) == len(members):
        common = set.intersection(*({c["a"], c["b"]} for c in conflicts))
        given = next(iter(common)) if len(common) == 1 else conflicts[0]["b"]
        typed = [c for c in conflicts if c["ta"]]
        if typed and len(typed) == len(conflicts):
            found = typed[0]["ta"] if typed[0]["a"] == given else typed[0]["tb"]
            wanted = sorted({c["tb"] if c["a"] == given else c["ta"] for c in typed} - {"null"})
            expected = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted) or "another type"
            return _make(
                "PA203",
                f"expected {expected}, found {_TYPE_WORDS.get(found, found)} {given}",
                target.path,
                positions,
                run,
                _quote_hint(found, wanted),
            )
        choices = sorted({c["a"] if c["b"] == given else c["b"] for c in conflicts})
        hint = did_you_mean(_unquote(given), [_unquote(c) for c in choices])
        return _make("PA206", f"{given} is not one of: {', '.join(choices)}", target.path, positions, run, hint)
    singles = [d for d in (_diagnostic(e, run) for e in members if not _CONFLICT.match(e.message)) if d]
    return (
        singles[0]
        if singles
        else _make("PA206", f"no alternative allows this value ({target.message})", target.path, positions, run)
    )


def _quote_hint(found: str, wanted: list[str]) -> str:
    if found in ("int", "float", "number") and wanted == ["string"]:
        return "quote the value to make it a string"
    if found == "string" and set(wanted) & {"int", "number", "float"}:
        return "remove the quotes to write a number"
    return ""


def _pattern_help(bound: str) -> str:
    """Name the scalar type whose pattern a value failed, e.g. a DNS-1123 label."""
    try:
        pattern = json.loads(bound[2:])
    except json.JSONDecodeError:
        return ""
    for name, body in SCALARS.values():
        if f'=~#"{pattern}"#' in body:
            return f"the value must be a {name.lstrip('#')} (see its definition in the schema)"
    return ""


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _diagnostic(error: CueError, run: _Run) -> Diagnostic | None:
    msg = error.message
    if m := _CONFLICT.match(msg):
        if m["ta"]:
            given, found, wanted = (m["b"], m["tb"], m["ta"]) if m["a"] in _TYPE_NAMES else (m["a"], m["ta"], m["tb"])
            return _make(
                "PA203",
                f"expected {_TYPE_WORDS.get(wanted, wanted)}, found {_TYPE_WORDS.get(found, found)} {given}",
                error.path,
                error.positions,
                run,
                _quote_hint(found, [wanted]),
            )
        if error.path in ("apiVersion", "kind"):
            want = "pyagent.dev/v1alpha1" if error.path == "apiVersion" else "Swarm"
            given = m["b"] if _unquote(m["a"]) == want else m["a"]
            return _make(
                "PA207",
                f"unsupported {error.path} {given}",
                error.path,
                error.positions,
                run,
                f'this pyagent reads `{error.path}: "{want}"`',
            )
        return _make(
            "PA121",
            f"conflicting values {m['a']} and {m['b']}",
            error.path,
            error.positions,
            run,
            "CUE unifies every value written for a field; they must agree (use a default `*x | T` "
            "in the base to let another file override it)",
        )
    if (m := _BOUND.match(msg)) and m["bound"].startswith(("=~", "!~")):
        return _make(
            "PA206",
            f"{m['v']} does not match {m['bound']}",
            error.path,
            error.positions,
            run,
            _pattern_help(m["bound"]),
        )
    if m := _BOUND.match(msg):
        return _make("PA205", f"{m['v']} is out of range: must be {m['bound']}", error.path, error.positions, run)
    if m := _MATCH.match(msg):
        why = m["why"].lstrip(": ")
        return _make(
            "PA206",
            f"{m['v']} does not satisfy {m['c']}" + (f" ({why})" if why else ""),
            error.path,
            error.positions,
            run,
        )
    if msg == "field not allowed":
        return _make(
            "PA201",
            f"unknown field {_last(error.path)!r}",
            error.path,
            error.positions,
            run,
            "the schema (#Swarm) is closed: check the spelling and the nesting",
        )
    if msg.startswith("field is required but not present"):
        return _make("PA202", f"missing required field {_last(error.path)!r}", error.path, error.positions, run)
    if msg.startswith(("incomplete value", "non-concrete value")) or "cannot convert incomplete value" in msg:
        return _make(
            "PA122",
            f"{msg}: a value is still a type or a constraint",
            error.path,
            error.positions,
            run,
            "give the field a concrete value (or a default with `*`)",
        )
    if m := _FIELD_REF.match(msg):
        return _make("PA123", f"undefined field {m['name']!r}", error.path, error.positions, run)
    if m := _REF.match(msg):
        return _make("PA123", f"undefined reference {m['name']!r}", error.path, error.positions, run)
    if msg.startswith("incompatible list lengths"):
        return _make("PA121", msg, error.path, error.positions, run)
    if "structural cycle" in msg:
        return _make("PA126", msg, error.path, error.positions, run)
    if "cannot find package" in msg or "import failed" in msg or "no dependency found" in msg:
        return _make(
            "PA124",
            msg,
            error.path,
            error.positions,
            run,
            "vendor the schema: copy specs/cue/swarm.cue into cue.mod/pkg/pyagent.dev/swarm/ "
            "of your CUE module (see docs/cue.md)",
        )
    if _SYNTAX.search(msg) and error.positions and not error.path:
        return _make("PA120", msg, "", error.positions, run)
    return _make("PA129", msg, error.path, error.positions, run)


def _last(cue_path: str) -> str:
    parts = split_path(cue_path)
    return str(parts[-1]) if parts else cue_path


def _make(
    code: str, message: str, cue_path: str, positions: list[tuple[str, int, int]], run: _Run, help_: str = ""
) -> Diagnostic:
    spans: list[Span] = []
    for file, line, col in positions:
        span = run.span(file, line, col)
        if all((s.file, s.line) != (span.file, span.line) for s in spans):  # one label per line is enough
            spans.append(span)
    user = [s for s in spans if not _is_dependency(s.file) and not _is_schema_reference(run, s)]
    parts = split_path(cue_path) if cue_path else ()
    primary = user[0] if user else None
    if primary is None and run.located is not None and parts:
        # CUE gave no position the user wrote: use where cuepos saw the field (or, for a missing
        # field, the mapping that lacks it), as the YAML loader does.
        primary = run.located.key_span(parts[:-1]) if code == "PA202" else run.located.value_span(parts)
    if primary is None and spans:
        primary = spans[0]
    secondary = tuple(Label(s, _role(run, s)) for s in spans if s != primary)
    path = format_path(parts)
    return Diagnostic(
        code, message, path=path, primary=Label(primary) if primary else None, secondary=secondary, help=help_
    )


def _is_dependency(file: str) -> bool:
    return file == SCHEMA_DISPLAY or "cue.mod/" in file


def _role(run: _Run, span: Span) -> str:
    if _is_dependency(span.file):
        return "constraint in the schema"
    if _is_schema_reference(run, span):
        return "the schema applies here"
    return "also set here"


def _is_schema_reference(run: _Run, span: Span) -> bool:
    """Whether the position is a reference to a definition (e.g. `swarm.#Swarm`), not a value."""
    line = _source_line(run, span)
    return line is not None and re.match(r"(?:[A-Za-z_]\w*\.)?#\w", line[span.col - 1 :]) is not None


def _source_line(run: _Run, span: Span) -> str | None:
    rel = posixpath.relpath(span.file, run.display_dir) if run.display_dir else span.file
    lines = run.lines(rel)
    return lines[span.line - 1] if 0 < span.line <= len(lines) else None


__all__ = ["CUEPOS_ENV", "CUE_ENV", "CUE_VERSION", "find_cue", "load_cue", "parse_errors", "split_path"]
