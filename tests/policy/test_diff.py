"""`pyagent diff`: per-resource diff of two specs or two git revisions, summary first,
Secrets masked, text / markdown / json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pyagent_compile.plan.diff import MASK, diff_plans
from pyagent_compile.plan.model import Plan, PlannedObject
from tests.policy.helpers import copy_example, run_cli

SCALE = ("  gateway:\n    replicas: 2", "  gateway:\n    replicas: 4")
RULE = (
    "      reason: the EU-hosted calendar service\n",
    "      reason: the EU-hosted calendar service\n    - name: metrics\n      from: {cidrs: [10.0.0.0/24]}\n"
    "      to: {swarm: true}\n      ports: [{port: 9100}]\n      reason: prometheus scrapes the nodes\n",
)


def pair(tmp_path: Path) -> tuple[Path, Path]:
    return copy_example("sovereign", tmp_path / "base"), copy_example(
        "sovereign", tmp_path / "head", edit=(SCALE, RULE)
    )


def test_summary_first_then_only_what_changed(tmp_path: Path) -> None:
    base, head = pair(tmp_path)
    code, out, _ = run_cli("diff", str(base), str(head), "--env", "prod")
    assert code == 0
    summary, _, details = out.partition("\n+ prod:")
    assert "environment prod: 1 added, 1 changed, 0 removed" in summary
    assert "NetworkPolicy          +1 added" in summary and "StatefulSet            ~1 changed" in summary
    assert "networkpolicy/sovereign-fw-metrics-in" in details and "cidr: 10.0.0.0/24" in details
    assert "-  replicas: 2\n+  replicas: 4\n" in details
    assert "sovereign-frankfurt" not in out  # unchanged objects are not shown


def test_markdown_and_json(tmp_path: Path) -> None:
    base, head = pair(tmp_path)
    _, markdown, _ = run_cli("diff", str(base), str(head), "--format", "markdown")
    assert markdown.startswith("<!-- pyagent-diff -->\n### pyagent diff")
    assert "| prod | StatefulSet |  | 1 |  |" in markdown and "| staging | NetworkPolicy | 1 |  |  |" in markdown
    assert "```diff" in markdown
    _, out, _ = run_cli("diff", str(base), str(head), "--format", "json")
    document = json.loads(out)
    assert [e["name"] for e in document["environments"]] == ["prod", "staging"]  # the spec's order
    prod = document["environments"][0]
    assert prod["summary"] == {
        "NetworkPolicy": {"added": 1, "changed": 0, "removed": 0},
        "StatefulSet": {"added": 0, "changed": 1, "removed": 0},
    }
    assert [c["logicalName"] for c in prod["changed"]] == ["statefulset/sovereign-gateway"]


def test_no_changes(tmp_path: Path) -> None:
    base = copy_example("sovereign", tmp_path / "a")
    _, out, _ = run_cli("diff", str(base), str(base))
    assert out.rstrip().endswith("no changes")


def _plan(objects: list[dict[str, object]]) -> Plan:
    return Plan("s", "prod", "prod", "s-prod", tuple(PlannedObject(o, ("metadata",)) for o in objects), {})


def test_secret_values_are_masked() -> None:
    def secret(value: str, extra: dict[str, str]) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "soul", "labels": extra},
            "data": {"soul": value},
        }

    diff = diff_plans(
        "prod",
        _plan([secret("b2xkLXNlY3JldA==", {})]),
        _plan([secret("bmV3LXNlY3JldA==", {"rotated": "yes"})]),
        ("a", "b"),
    )
    (change,) = diff.changed
    assert "bmV3" not in change.diff and "b2xk" not in change.diff
    assert "+    rotated: yes" in change.diff or '+    rotated: "yes"' in change.diff
    only_value = diff_plans("prod", _plan([secret("b2xk", {})]), _plan([secret("bmV3", {})]), ("a", "b"))
    assert only_value.changed[0].secret_changed and only_value.changed[0].diff == ""
    added = diff_plans("prod", None, _plan([secret("bmV3LXNlY3JldA==", {})]), ("a", "b"))
    assert "bmV3" not in added.added[0].diff and MASK in added.added[0].diff


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_git_revisions_of_one_spec(tmp_path: Path) -> None:
    spec = copy_example("sovereign", tmp_path / "repo")
    repo = tmp_path / "repo"
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    text = spec.read_text()
    spec.write_text(text.replace(*SCALE))
    _git(repo, "commit", "-qam", "scale the gateway")
    spec.write_text(spec.read_text().replace(*RULE))  # uncommitted
    code, out, _ = run_cli(
        "diff", "HEAD~1", "HEAD", "sovereign/swarm.yaml", "--env", "prod", "--format", "json", cwd=repo
    )
    assert code == 0
    prod = json.loads(out)["environments"][0]
    assert (len(prod["added"]), len(prod["changed"])) == (0, 1)
    assert json.loads(out)["title"] == "HEAD~1:sovereign/swarm.yaml -> HEAD:sovereign/swarm.yaml"
    code, out, _ = run_cli("diff", "HEAD", ".", "sovereign/swarm.yaml", "--env", "prod", "--format", "json", cwd=repo)
    prod = json.loads(out)["environments"][0]
    assert (len(prod["added"]), len(prod["changed"])) == (1, 0)


def test_unknown_revision_is_a_usage_error(tmp_path: Path) -> None:
    copy_example("sovereign", tmp_path / "repo")
    _git(tmp_path / "repo", "init", "-q")
    code, _, err = run_cli("diff", "nope", ".", "sovereign/swarm.yaml", cwd=tmp_path / "repo")
    assert code == 2 and "PA595" in err
