"""examples/ci/ parses, and every pyagent command line in it is one the CLI accepts."""

from __future__ import annotations

import re
import shlex

import yaml

from pyagent_compile.cli import build_parser
from tests.policy.helpers import ROOT

CI = ROOT / "examples" / "ci"


def commands() -> list[list[str]]:
    workflow = yaml.safe_load((CI / "pyagent.yml").read_text())
    hooks = yaml.safe_load((CI / "pre-commit-config.yaml").read_text())
    lines = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    lines += [hook["entry"] for repo in hooks["repos"] for hook in repo["hooks"]]
    found = []
    for text in lines:
        for match in re.finditer(r"pyagent (?:compile|policy|diff|scenario)[^>|;\n]*", text):
            found.append(shlex.split(match.group(0).replace('"$BASE"', "main").replace('"$spec"', "x.yaml"))[1:])
    return found


def test_ci_examples_use_real_commands() -> None:
    found = commands()
    assert {c[0] for c in found} == {"compile", "policy", "diff", "scenario"}
    policy = next(c for c in found if c[:2] == ["policy", "check"])
    assert "sarif=pyagent-policy.sarif" in policy
    scenario = next(c for c in found if c[:2] == ["scenario", "run"])
    assert "junit=pyagent-scenarios.xml" in scenario
    for argv in found:
        build_parser().parse_args(argv)  # exits (SystemExit) on an unknown option
