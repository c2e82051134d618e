"""`pyagent policy check`: exit codes, locations on the spec, waivers, and every output format
(SARIF validated against OASIS's 2.1.0 schema, JUnit parsed, GitHub annotations)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from tests.policy.helpers import DATA, EXAMPLES, ROOT, copy_example, run_cli

TODAY = "2026-11-24"
INTERNET = ("from: {cidrs: [203.0.113.0/24]}", "from: {cidrs: [0.0.0.0/0]}")
WAIVER = """
waivers:
  - ruleId: PA511
    object: firewall.rules[0]
    reason: the public status page is served by the gateway; reviewed by the security team
    expires: "{expires}"
"""


def leaky(tmp_path: Path) -> Path:
    return copy_example("sovereign", tmp_path, edit=(INTERNET,))


def line_of(spec: Path, needle: str) -> int:
    return next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if needle in text)


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_exit_0(example: str) -> None:
    code, _, err = run_cli("policy", "check", f"examples/{example}/swarm.yaml", "--today", TODAY)
    assert code == 0, err


def test_mandatory_failure_exits_1_on_the_spec_line(tmp_path: Path) -> None:
    spec = leaky(tmp_path)
    code, out, _ = run_cli("policy", "check", str(spec), "--today", TODAY, "--format", "json", "--env", "prod")
    assert code == 1
    found = [d for d in json.loads(out)["diagnostics"] if d["code"] == "PA511"]
    assert len(found) == 1
    location = found[0]["location"]
    assert location["line"] == line_of(spec, "0.0.0.0/0")
    assert location["message"].startswith("networkpolicy/sovereign-fw-partner-tls-in: spec.ingress[0]")
    assert found[0]["path"] == "firewall.rules[0].from.cidrs"


def test_valid_waiver_turns_the_failure_into_a_note(tmp_path: Path) -> None:
    spec = copy_example("sovereign", tmp_path, edit=(INTERNET,), append=WAIVER.format(expires="2027-01-31"))
    code, out, _ = run_cli("policy", "check", str(spec), "--today", TODAY, "--format", "json")
    assert code == 0
    codes = [(d["code"], d["severity"]) for d in json.loads(out)["diagnostics"]]
    assert codes == [("PA511", "note")]  # staging and prod: the same finding, reported once


def test_expired_waiver_is_a_finding_and_waives_nothing(tmp_path: Path) -> None:
    spec = copy_example("sovereign", tmp_path, edit=(INTERNET,), append=WAIVER.format(expires="2026-11-23"))
    code, out, _ = run_cli("policy", "check", str(spec), "--today", TODAY, "--format", "json", "--env", "prod")
    assert code == 1
    diags = json.loads(out)["diagnostics"]
    assert sorted((d["code"], d["severity"]) for d in diags) == [("PA511", "error"), ("PA590", "error")]
    expired = next(d for d in diags if d["code"] == "PA590")
    assert expired["location"]["line"] == line_of(spec, 'expires: "2026-11-23"')


def test_unused_waiver_is_advisory(tmp_path: Path) -> None:
    spec = copy_example("sovereign", tmp_path, append=WAIVER.format(expires="2027-01-31"))
    code, out, _ = run_cli("policy", "check", str(spec), "--today", TODAY, "--format", "json", "--env", "prod")
    assert code == 0
    assert [(d["code"], d["severity"]) for d in json.loads(out)["diagnostics"]] == [("PA591", "warning")]


def test_waivers_are_not_rendered(tmp_path: Path) -> None:
    plain = copy_example("sovereign", tmp_path / "a")
    waived = copy_example("sovereign", tmp_path / "b", append=WAIVER.format(expires="2027-01-31"))
    for spec in (plain, waived):
        assert run_cli("compile", str(spec), "--out", str(spec.parent / "out"))[0] == 0
    for a in sorted((plain.parent / "out").rglob("*")):
        b = waived.parent / "out" / a.relative_to(plain.parent / "out")
        assert a.is_dir() or a.read_bytes() == b.read_bytes(), a


def test_sarif_is_valid_against_the_oasis_schema(tmp_path: Path) -> None:
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    for spec in (str(leaky(tmp_path)), "examples/research/swarm.yaml", "examples/laptop/swarm.yaml"):
        _, out, _ = run_cli("policy", "check", spec, "--today", TODAY, "--format", "sarif")
        document = json.loads(out)
        jsonschema.validate(document, schema)
        assert document["version"] == "2.1.0"
    results = json.loads(
        run_cli("policy", "check", str(leaky(tmp_path / "x")), "--today", TODAY, "--format", "sarif", "--env", "prod")[
            1
        ]
    )["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("PA511", "error")]
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == line_of(tmp_path / "x" / "sovereign" / "swarm.yaml", "0.0.0.0/0")


def test_junit_parses_with_one_failure_per_mandatory_finding(tmp_path: Path) -> None:
    _, out, _ = run_cli("policy", "check", str(leaky(tmp_path)), "--today", TODAY, "--format", "junit", "--env", "prod")
    root = ET.fromstring(out)
    suite = root.find("testsuite")
    assert suite is not None
    failures = suite.findall("testcase/failure")
    assert [f.get("type") for f in failures] == ["PA511"]
    assert int(suite.get("failures", "0")) == 1
    assert int(suite.get("tests", "0")) == len(suite.findall("testcase")) > 10  # passing rules are listed too


def test_github_annotations(tmp_path: Path) -> None:
    spec = leaky(tmp_path)
    _, out, _ = run_cli("policy", "check", str(spec), "--today", TODAY, "--format", "github", "--env", "prod")
    (line,) = out.splitlines()
    assert line.startswith(f"::error file={spec},line={line_of(spec, '0.0.0.0/0')},col=")
    assert "title=PA511::" in line


def test_pack_config_lists_waived_objects(tmp_path: Path) -> None:
    spec = copy_example("sovereign", tmp_path, edit=(INTERNET,), append=WAIVER.format(expires="2027-01-31"))
    code, out, _ = run_cli("policy", "pack-config", str(spec), "--today", TODAY, "--env", "prod")
    assert code == 0
    config = json.loads(out)
    assert config["pa511-concrete-allow-rules"]["waived"] == ["networkpolicy/sovereign-fw-partner-tls-in"]
    assert config["pa512-internal-ports-swarm-only"] == {
        "internalPorts": [7100, 7946],
        "jurisdictions": ["EU"],
        "tier": "prod",
        "waived": [],
    }


def test_sarif_reports_waived_findings_as_suppressed(tmp_path: Path) -> None:
    spec = copy_example("sovereign", tmp_path, edit=(INTERNET,), append=WAIVER.format(expires="2027-01-31"))
    code, out, _ = run_cli("policy", "check", str(spec), "--today", TODAY, "--format", "sarif", "--env", "prod")
    assert code == 0
    document = json.loads(out)
    jsonschema.validate(document, json.loads((DATA / "sarif-schema-2.1.0.json").read_text()))
    (result,) = document["runs"][0]["results"]
    assert result["level"] == "note"
    assert result["suppressions"] == [
        {
            "kind": "inSource",
            "status": "accepted",
            "justification": "the public status page is served by the gateway; reviewed by the security "
            "team (waiver expires 2027-01-31)",
        }
    ]


def test_validate_sarif_and_junit_on_the_bad_spec_corpus() -> None:
    """The formats serve every command: the whole bad-spec corpus (secondary locations, usage
    errors without a position) renders to schema-valid SARIF and to parseable JUnit."""
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    bad = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "bad").glob("*.yaml"))
    assert len(bad) > 10
    code, out, _ = run_cli("validate", *bad, "--format", "sarif")
    assert code in (1, 2)
    document = json.loads(out)
    jsonschema.validate(document, schema)
    assert len(document["runs"][0]["results"]) >= len(bad)
    assert any("relatedLocations" in r for r in document["runs"][0]["results"])
    _, out, _ = run_cli("validate", *bad, "--format", "junit")
    assert len(ET.fromstring(out).findall("testsuite/testcase/failure")) >= len(bad) - 2


def test_findings_of_some_environments_name_them(tmp_path: Path) -> None:
    no_class = ("      memory: 4Gi\n      storageClass: encrypted-ssd\n", "      memory: 4Gi\n")
    dev = ("environments:\n", "environments:\n  dev:\n    tier: dev\n")
    spec = copy_example("sovereign", tmp_path, edit=(no_class, dev))
    sarif_file, junit_file = tmp_path / "p.sarif", tmp_path / "p.xml"
    code, out, _ = run_cli(
        "policy",
        "check",
        str(spec),
        "--today",
        TODAY,
        "--format",
        "json",
        "--output",
        f"sarif={sarif_file}",
        "--output",
        f"junit={junit_file}",
    )
    assert code == 1
    (found,) = [d for d in json.loads(out)["diagnostics"] if d["code"] == "PA505"]
    assert found["message"].endswith("[prod, staging]")  # dev allows the default storage class
    sarif = json.loads(sarif_file.read_text())
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["PA505"]
    assert ET.parse(junit_file).getroot().find("testsuite/testcase/failure") is not None


def test_waiver_with_an_impossible_date_is_a_spec_error(tmp_path: Path) -> None:
    spec = copy_example("sovereign", tmp_path, append=WAIVER.format(expires="2026-02-30"))
    code, out, _ = run_cli("policy", "check", str(spec), "--today", TODAY, "--format", "json", "--env", "prod")
    assert code == 1
    (diag,) = json.loads(out)["diagnostics"]
    assert (diag["code"], diag["path"]) == ("PA206", "waivers[0].expires")
    assert diag["location"]["line"] == line_of(spec, 'expires: "2026-02-30"')
