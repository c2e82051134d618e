"""Reading a scenario file (YAML, or JSON, which YAML 1.2 reads too) into the typed Scenario,
with the same located diagnostics as a spec, and the text of the files its inputs name.

Reading `@path` inputs here keeps the checks and the plan pure: they get the texts (or why a
file could not be read) and decide by the manifest's input types which strings are file names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic, Label, Span
from pyagent_compile.load.document import Document
from pyagent_compile.load.text import read_text
from pyagent_compile.load.yaml import parse_yaml
from pyagent_compile.model.build import build_model
from pyagent_compile.model.scenario import SCENARIO_API_VERSION, SCENARIO_KIND, Scenario

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class InputFile:
    """The file an `@path` input names: its text, or why it could not be read."""

    path: str  # as written after `@`, relative to the scenario file
    text: str | None
    problem: str = ""


@dataclass
class LoadedScenario:
    """One scenario file: its document (positions), the model if it validated, the files its
    `@path` inputs name (input name -> file) and the problems reading or validating it."""

    display: str
    doc: Document | None = None
    scenario: Scenario | None = None
    files: dict[str, InputFile] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def load_scenario(path: Path, display: str) -> LoadedScenario:
    loaded = LoadedScenario(display)
    if path.suffix not in SCENARIO_SUFFIXES:
        loaded.diagnostics.append(
            Diagnostic(
                "PA110",
                f"{display}: cannot tell the scenario format from the suffix {path.suffix!r}",
                primary=Label(Span(display, 1, 1)),
                help="name the scenario file <name>.yaml (or .yml, or .json)",
            )
        )
        return loaded
    text, diags = read_text(path, display)
    loaded.diagnostics += diags
    if text is None:
        return loaded
    doc, diags = parse_yaml(text, display)
    loaded.diagnostics += diags
    if doc is None:
        return loaded
    loaded.doc = doc
    scenario, diags = build_model(doc, Scenario, SCENARIO_API_VERSION, SCENARIO_KIND)
    loaded.diagnostics += diags
    loaded.scenario = scenario
    if scenario is not None:
        loaded.files = _input_files(scenario, path.parent)
    return loaded


def _input_files(scenario: Scenario, folder: Path) -> dict[str, InputFile]:
    files = {}
    for name, value in scenario.inputs.items():
        if isinstance(value, str) and value.startswith("@"):
            files[name] = _read_input(folder, value[1:])
    return files


def _read_input(folder: Path, relative: str) -> InputFile:
    try:
        return InputFile(relative, (folder / relative).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return InputFile(relative, None, "not UTF-8 text")
    except OSError as exc:
        return InputFile(relative, None, exc.strerror or str(exc))


__all__ = ["SCENARIO_SUFFIXES", "InputFile", "LoadedScenario", "load_scenario"]
