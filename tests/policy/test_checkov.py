"""Cross-check with a tool nobody here wrote: checkov over every example stack's manifests.
No failed check, except the documented skips of policies/checkov.yaml, each still needed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.policy.helpers import ROOT

STACKS = sorted(str(p.parent.relative_to(ROOT / "stacks")) for p in (ROOT / "stacks").glob("*/*/plan.json"))
SKIPS = yaml.safe_load((ROOT / "policies" / "checkov.yaml").read_text())["skips"]


def checkov() -> str:
    found = shutil.which("checkov") or str(ROOT / ".tools" / "bin" / "checkov")
    if not Path(found).exists():
        pytest.fail("checkov is not installed: run `bash .ci/install-checkov.sh` (make setup does)")
    return found


def failed_checks(manifests: Path) -> set[str]:
    done = subprocess.run(
        [
            checkov(),
            "-d",
            str(manifests),
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert sum(r["summary"]["passed"] for r in reports) > 50  # it really scanned the objects
    return {c["check_id"] for r in reports for c in r["results"]["failed_checks"]}


def test_every_skip_has_a_reason() -> None:
    assert all(s["reason"].strip() and s["stacks"] and s["check"].startswith("CKV_") for s in SKIPS)


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_passes_the_example_manifests(stack: str) -> None:
    failed = failed_checks(ROOT / "stacks" / stack / "manifests")
    skipped = {s["check"] for s in SKIPS if stack in s["stacks"]}
    assert failed - skipped == set(), f"checkov fails {sorted(failed - skipped)} on stacks/{stack}"
    assert skipped - failed == set(), f"skips no longer needed for {stack}: {sorted(skipped - failed)}"
