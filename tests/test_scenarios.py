"""Scenario files (docs/scenarios.md): the model and its JSON Schema, located diagnostics for the
mistakes users make (PA340-PA349 and the schema's), the normalised scenarios of work.json, and the
pieces of `pyagent scenario run` that need no swarm: discovery, the verify task it submits, reading
recorded verdicts and reporting them in every format."""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyagent_compile.canonical import to_json
from pyagent_compile.commands import scenario as command
from pyagent_compile.commands.info import scenario_json_schema
from pyagent_compile.commands.specs import Target
from pyagent_compile.contracts import work as contract
from pyagent_compile.diagnostics import Diagnostic, Severity
from pyagent_compile.pipeline import compile_spec
from pyagent_compile.runtime import scenarios as rt
from pyagent_compile.runtime.nodeapi import node_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
apiVersion: pyagent.dev/v1alpha1
kind: Swarm
metadata: {name: scen}
nodes:
  pool:
    replicas: 1
    roles: [voter, worker]
    hardware: {cpu: 1, memory: 1Gi}
    cores: [main, helper]
cores:
  main:
    model: {name: tiny, endpoint: "http://127.0.0.1:9/v1"}
    tools: [{name: files, command: [files-mcp]}]
  helper:
    tools: [{name: web, command: [web-mcp]}]
memory:
  kv: {blockSize: 16, bytesPerToken: 32Ki, capacity: {blocks: 256}}
manifests:
  work:
    core: main
    inputs: {text: string, n: int, flag: bool, data: json}
    outputs:
      found: {type: json, from: steps.look}
      report: {type: report, from: steps.think}
    steps:
      - {id: look, kind: mcp, tool: files.read}
      - {id: think, kind: cort, rounds: 1, alternatives: 1, after: [look]}
      - {id: hand, kind: delegate, core: helper, manifest: helper}
  helper:
    core: helper
    steps:
      - {id: fetch, kind: mcp, tool: web.fetch}
  checked:
    core: main
    outputs: {verdict: {type: verdict, from: steps.verify}}
    steps:
      - id: verify
        kind: verify
        scenario: scenarios/s.yaml
"""

GOOD = """\
apiVersion: pyagent.dev/scenario/v1alpha1
kind: Scenario
metadata: {name: good}
manifest: work
inputs:
  text: "@text.txt"
  n: 3
  flag: true
  data: {a: [1, 2]}
stubs:
  tools:
    - {tool: files.read, result: {content: hi}}
    - {tool: web.fetch, result: "<html/>"}
  model:
    answers: [first, alt, "CHOICE: 1 because"]
expect:
  state: succeeded
  steps: {look: succeeded, think: succeeded}
  outputs:
    - {output: found, path: /content, equals: hi}
    - {output: report, contains: first}
    - {output: found, path: /missing, exists: false}
"""


def _compile(tmp: Path, scenario: str, spec: str = SPEC) -> tuple[list[tuple[str, str, int, int]], Path]:
    (tmp / "scenarios").mkdir(exist_ok=True)
    (tmp / "scenarios" / "s.yaml").write_text(scenario, encoding="utf-8")
    (tmp / "scenarios" / "text.txt").write_text("the text\n", encoding="utf-8")
    path = tmp / "swarm.yaml"
    path.write_text(spec, encoding="utf-8")
    result = compile_spec(path, "swarm.yaml", "local")
    found = [
        (d.code, d.severity.value, d.span.line if d.span else 0, d.span.col if d.span else 0)
        for d in result.diagnostics
    ]
    return sorted(found), path


def _at(text: str, token: str) -> tuple[int, int]:
    """1-based line and column of the first `token` in `text`."""
    offset = text.index(token)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def test_a_good_scenario_compiles_into_work_json_normalised(tmp_path: Path) -> None:
    found, path = _compile(tmp_path, GOOD)
    assert found == []
    result = compile_spec(path, "swarm.yaml", "local")
    assert result.local is not None
    work = result.local.work.to_json()
    assert list(work["scenarios"]) == ["scenarios/s.yaml"]
    assert work["scenarios"]["scenarios/s.yaml"] == {
        "name": "good",
        "manifest": "work",
        "inputs": {"data": {"a": [1, 2]}, "flag": True, "n": 3, "text": "the text\n"},
        "stubs": {
            "tools": [
                {"tool": "files.read", "result": {"content": "hi"}},
                {"tool": "web.fetch", "result": "<html/>"},
            ],
            "model": {"answers": ["first", "alt", "CHOICE: 1 because"]},
        },
        "expect": {
            "state": "succeeded",
            "errorCode": None,
            "steps": {"look": "succeeded", "think": "succeeded"},
            "outputs": [
                {"output": "found", "path": "/content", "equals": "hi", "contains": None, "exists": None},
                {"output": "report", "path": "", "equals": None, "contains": "first", "exists": None},
                {"output": "found", "path": "/missing", "equals": None, "contains": None, "exists": False},
            ],
        },
    }
    # What the daemon reads back (strict, every key) is what was written.
    assert contract.read_work_file(json.dumps(work)).to_json() == work


def test_a_minimal_scenario_has_every_key_of_the_contract(tmp_path: Path) -> None:
    spec = SPEC.replace("inputs: {text: string, n: int, flag: bool, data: json}", "inputs: {}")
    text = (
        "apiVersion: pyagent.dev/scenario/v1alpha1\nkind: Scenario\nmetadata: {name: m}\nmanifest: helper\n"
        "stubs: {tools: [{tool: web.fetch, result: null}]}\n"
    )
    found, path = _compile(tmp_path, text, spec)
    assert found == []
    result = compile_spec(path, "swarm.yaml", "local")
    assert result.local is not None
    assert result.local.work.to_json()["scenarios"]["scenarios/s.yaml"] == {
        "name": "m",
        "manifest": "helper",
        "inputs": {},
        "stubs": {"tools": [{"tool": "web.fetch", "result": None}], "model": {"answers": []}},
        "expect": {"state": "succeeded", "errorCode": None, "steps": {}, "outputs": []},
    }


# (what is wrong, the change to GOOD, [(code, severity, the token the diagnostic points at)])
MISTAKES = [
    ("unknown manifest", ("manifest: work", "manifest: wrok"), [("PA340", "error", "wrok")]),
    ("unknown input", ("  n: 3\n", "  n: 3\n  count: 4\n"), [("PA341", "error", "count")]),
    ("int given as text", ("  n: 3\n", '  n: "3"\n'), [("PA341", "error", '"3"')]),
    ("bool given as a word", ("flag: true", "flag: yes"), [("PA341", "error", "yes")]),
    ("missing input", ("  flag: true\n", ""), [("PA341", "error", "inputs:")]),
    ("unreadable file", ("@text.txt", "@nope.txt"), [("PA342", "error", '"@nope.txt"')]),
    (
        "tool not stubbed (one delegated to)",
        ('    - {tool: web.fetch, result: "<html/>"}\n', ""),
        [("PA343", "error", "tools:")],
    ),
    (
        "tool stub misspelt",
        ("tool: files.read", "tool: files.raed"),
        [("PA343", "error", "tools:"), ("PA348", "warning", "files.raed")],
    ),
    (
        "no model answers",
        ('    answers: [first, alt, "CHOICE: 1 because"]\n', "    answers: []\n"),
        [("PA344", "error", "stubs")],
    ),
    ("too few model answers", ('[first, alt, "CHOICE: 1 because"]', "[first]"), [("PA344", "warning", "answers")]),
    ("unknown step", ("think: succeeded", "thinking: succeeded"), [("PA346", "error", "thinking")]),
    ("unknown output", ("output: report", "output: reprot"), [("PA347", "error", "reprot")]),
    (
        "unknown error code",
        ("  state: succeeded\n", "  state: failed\n  errorCode: PA999\n"),
        [("PA349", "error", "PA999")],
    ),
    (
        "two checks in one assertion",
        ("equals: hi}", "equals: hi, exists: true}"),
        [("PA206", "error", "{output: found, path: /content")],
    ),
    ("unknown key", ("expect:\n", "expects:\n"), [("PA201", "error", "expects")]),
    ("wrong kind", ("kind: Scenario", "kind: Scenaro"), [("PA207", "error", "Scenaro")]),
    (
        "errorCode while succeeded",
        ("  state: succeeded\n", "  state: succeeded\n  errorCode: PA720\n"),
        [("PA206", "error", "state: succeeded")],
    ),
    ("step state misspelt", ("look: succeeded", "look: suceeded"), [("PA206", "error", "suceeded")]),
]


@pytest.mark.parametrize(("change", "expected"), [(m[1], m[2]) for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_located_in_the_scenario_file(
    tmp_path: Path, change: tuple[str, str], expected: list[tuple[str, str, str]]
) -> None:
    assert change[0] in GOOD
    text = GOOD.replace(change[0], change[1], 1)
    found, _ = _compile(tmp_path, text)
    assert found == sorted((code, sev, *_at(text, token)) for code, sev, token in expected)


def test_problems_name_the_verify_step_as_the_related_place(tmp_path: Path) -> None:
    _compile(tmp_path, GOOD.replace("manifest: work", "manifest: wrok"))
    result = compile_spec(tmp_path / "swarm.yaml", "swarm.yaml", "local")
    [diag] = result.diagnostics
    assert diag.span is not None and diag.span.file == "scenarios/s.yaml"
    [related] = diag.secondary
    assert (related.span.file, related.span.line) == (
        "swarm.yaml",
        SPEC.count("\n", 0, SPEC.index("scenarios/s.yaml")) + 1,
    )
    assert "did you mean" in diag.help and "work" in diag.help


def test_a_scenario_whose_task_runs_itself_is_pa345(tmp_path: Path) -> None:
    spec = SPEC.replace(
        "      - {id: hand, kind: delegate, core: helper, manifest: helper}\n",
        "      - {id: hand, kind: delegate, core: helper, manifest: helper}\n"
        "      - {id: again, kind: verify, scenario: scenarios/s.yaml}\n",
    )
    found, _ = _compile(tmp_path, GOOD, spec)
    assert found == [("PA345", "error", *_at(GOOD, "work"))]


def test_a_scenario_file_that_is_not_yaml_is_located(tmp_path: Path) -> None:
    found, _ = _compile(tmp_path, "apiVersion: [\n")
    assert found == [("PA101", "error", 2, 1)]


def test_warnings_do_not_stop_the_plan(tmp_path: Path) -> None:
    _compile(tmp_path, GOOD.replace('[first, alt, "CHOICE: 1 because"]', "[first]"))
    spec = tmp_path / "swarm.yaml"
    spec.write_text(SPEC + "environments:\n  dev: {}\n", encoding="utf-8")
    result = compile_spec(spec, "swarm.yaml")
    assert result.ok and [d.severity for d in result.diagnostics] == [Severity.WARNING]
    assert result.local is not None and [env.plan is not None for env in result.environments] == [True]


def test_the_published_schema_is_the_models() -> None:
    published = (ROOT / "specs" / "scenario.schema.json").read_text()
    assert published == to_json(scenario_json_schema()), "run `make golden` to republish specs/scenario.schema.json"


def test_the_examples_scenarios_fit_the_schema() -> None:
    schema = scenario_json_schema()
    files = sorted(ROOT.glob("examples/*/scenarios/*.yaml"))
    assert len(files) >= 3
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


# -- pyagent scenario run, without a swarm ---------------------------------------------------------
def test_discovery_adds_scenarios_no_verify_step_names(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    for name in ("a.yaml", "b.yml", "c.json", "notes.txt", "s.yaml"):
        (tmp_path / "scenarios" / name).write_text("x")
    assert rt.discover(tmp_path, ["./scenarios/s.yaml"]) == ["scenarios/a.yaml", "scenarios/b.yml"]
    assert rt.discover(tmp_path / "nowhere", []) == []


def _work(tmp_path: Path) -> contract.WorkFile:
    _compile(tmp_path, GOOD)
    result = compile_spec(tmp_path / "swarm.yaml", "swarm.yaml", "local")
    assert result.local is not None
    return result.local.work


def test_the_verify_task_is_one_step_with_every_field_of_the_contract(tmp_path: Path) -> None:
    manifest = rt.verify_manifest(_work(tmp_path), "scenarios/s.yaml", 42.5).to_json()
    [step] = manifest.pop("steps")
    assert manifest == {
        "name": "scenario.good",
        "core": "main",
        "inputs": {},
        "outputs": {"verdict": {"type": "verdict", "from": "steps.verify"}},
    }
    assert step["id"] == "verify" and step["kind"] == "verify" and step["timeoutMs"] == 42500
    assert step["params"] == {"scenario": "scenarios/s.yaml"}
    assert set(step) == {info.alias or name for name, info in contract.Step.model_fields.items()}


def _view(
    state: str, error_code: str = "", reason: str = "", verdict: object = None, on_step: bool = False
) -> pb.TaskView:
    text = json.dumps(verdict) if verdict is not None else ""
    return pb.TaskView(
        found=True,
        id="scenario-good-1",
        state=state,
        error_code=error_code,
        reason=reason,
        outputs_json=json.dumps({"verdict": verdict}) if verdict is not None and not on_step else "",
        steps=[pb.StepView(id="verify", kind="verify", state=state, output_json=text if on_step else "")],
    )


def _verdict(passed: bool) -> dict[str, object]:
    return {
        "scenario": "good",
        "passed": passed,
        "task": "scenario-good-1.verify",
        "state": "succeeded",
        "checks": [
            {"check": "state is succeeded", "passed": True, "expected": "succeeded", "actual": "succeeded"},
            {"check": "found /content equals", "passed": passed, "expected": "hi", "actual": "hi" if passed else "ho"},
        ],
    }


def test_a_passing_verdict_is_a_pass() -> None:
    outcome = rt.outcome_of("scenarios/s.yaml", "good", _view("succeeded", verdict=_verdict(True)))
    assert outcome.passed and outcome.child == "scenario-good-1.verify" and len(outcome.checks) == 2
    assert not outcome.error_code


def test_a_failed_check_read_from_the_failed_verify_step() -> None:
    view = _view("failed", "PA729", 'step "verify" failed: 1 check failed', _verdict(False), on_step=True)
    outcome = rt.outcome_of("scenarios/s.yaml", "good", view)
    assert not outcome.passed and outcome.error_code == "PA729"
    assert [c.passed for c in outcome.checks] == [True, False]


def test_a_failed_task_without_verdict_fails_with_its_code() -> None:
    outcome = rt.outcome_of("scenarios/s.yaml", "good", _view("failed", "PA721", "verify not run yet"))
    assert not outcome.passed and (outcome.error_code, outcome.error) == ("PA721", "verify not run yet")


def test_success_without_verdict_is_pa653() -> None:
    outcome = rt.outcome_of("scenarios/s.yaml", "good", _view("succeeded"))
    assert not outcome.passed and outcome.error_code == "PA653"


def _report(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    _compile(tmp_path, GOOD)
    (tmp_path / "scenarios" / "t.yaml").write_text(GOOD.replace("name: good", "name: other"), encoding="utf-8")
    target = Target(tmp_path / "swarm.yaml", (tmp_path / "swarm.yaml").as_posix(), tmp_path)
    good = rt.outcome_of("scenarios/s.yaml", "good", _view("succeeded", verdict=_verdict(True)))
    bad = rt.outcome_of("scenarios/t.yaml", "other", _view("failed", "PA729", "a check failed", _verdict(False), True))
    args = argparse.Namespace(format=fmt, color="never", output=[])
    code = command._report(args, [target], [(target, good), (target, bad)], [])
    return code, capsys.readouterr().out


def test_junit_has_a_passing_case_and_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _report(tmp_path, "junit", capsys)
    assert code == 1
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")
    names = [c.get("name") for c in suite.iter("testcase")]
    assert f"scenario good (scenarios/s.yaml) [{(tmp_path / 'swarm.yaml').as_posix()}]" in names
    failure = next(c.find("failure") for c in suite.iter("testcase") if c.find("failure") is not None)
    assert failure is not None and failure.get("type") == "PA650"
    assert 'found /content equals: expected "hi", got "ho"' in (failure.get("message") or "")


def test_sarif_is_valid_and_located_on_the_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _report(tmp_path, "sarif", capsys)
    assert code == 1
    document = json.loads(out)
    schema = json.loads((ROOT / "tests" / "policy" / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(document, schema)
    [result] = document["runs"][0]["results"]
    place = result["locations"][0]["physicalLocation"]
    assert result["ruleId"] == "PA650" and place["artifactLocation"]["uri"].endswith("scenarios/t.yaml")
    assert place["region"]["startLine"] == 3  # metadata: {name: other}


def test_github_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _report(tmp_path, "github", capsys)
    assert code == 1 and out.startswith("::error file=") and "PA650" in out and out.count("\n") == 1
    (tmp_path / "j").mkdir()
    code, out = _report(tmp_path / "j", "json", capsys)
    document = json.loads(out)
    assert [s["passed"] for s in document["scenarios"]] == [True, False]
    assert document["summary"] == {"errors": 1, "warnings": 0}


def test_no_scenarios_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "swarm.yaml"
    spec.write_text(SPEC.split("  checked:")[0], encoding="utf-8")
    from pyagent_compile.cli import main

    assert main(["scenario", "run", str(spec)]) == 2
    assert "PA651" in capsys.readouterr().err


# -- never a traceback ----------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(["manifest", "inputs", "stubs", "expect", "metadata", "tools", "answers", "outputs"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(FIELDS, JSON_VALUES, max_size=3), text=st.text(max_size=40))
@example(changes={}, text="\x00")  # a binary file: about the file as a whole (found by this test)
def test_any_scenario_gives_located_diagnostics_never_a_traceback(
    tmp_path: Path, changes: dict[str, object], text: str
) -> None:
    document = yaml.safe_load(GOOD)
    for key, value in changes.items():
        parent = {"tools": "stubs", "answers": "stubs", "outputs": "expect"}.get(key)
        if parent is not None:
            inner = document.get(parent)
            document[parent] = {**(inner if isinstance(inner, dict) else {}), key: value}
        else:
            document[key] = value
    for scenario in (json.dumps(document), text):
        result = compile_spec(*_files(tmp_path, scenario))
        assert all(_located(d) for d in result.diagnostics), result.diagnostics


def _located(d: Diagnostic) -> bool:
    """At a line and column, or (a file that cannot be read as text at all: binary, unreadable)
    about the scenario file as a whole, naming it, as for spec files."""
    if d.span is not None:
        return d.span.line >= 1
    return d.code in {"PA100", "PA105"} and "scenarios/s.yaml" in d.message


def _files(tmp: Path, scenario: str) -> tuple[Path, str, str]:
    _compile(tmp, scenario)
    return tmp / "swarm.yaml", "swarm.yaml", "local"


def test_a_spec_too_large_for_one_machine_is_pa654(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pyagent_compile.cli import main

    _compile(tmp_path, GOOD, SPEC.replace("replicas: 1", "replicas: 51"))
    assert main(["scenario", "run", str(tmp_path / "swarm.yaml")]) == 2
    err = capsys.readouterr().err
    assert "warning[PA601]" in err and "error[PA654]" in err
