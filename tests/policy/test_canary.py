"""A canary secret placed in an example spec never appears in any file pyagent writes under
stacks/: every byte of every file is scanned, for the canary itself and its base64, hex and
JSON-escaped forms. The canary sits where a user would put secret context: in a comment next
to the soul's reference, and in a waiver's reason (waivers are never rendered)."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from pyagent_compile.policy.rules import PRIVATE_KEY
from tests.conftest import stack_files
from tests.policy.helpers import ROOT, copy_example, run_cli

CANARY = "pyagent-canary-7f3a9c1e5b2d4f60-soul-secret"
WAIVER = f"""
waivers:
  - ruleId: PA511
    object: firewall.rules[0]
    reason: "{CANARY}"
    expires: "2027-01-31"
"""


def forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    encoded = [raw, base64.b64encode(raw), binascii.hexlify(raw), secret.replace("-", "\\u002d").encode()]
    # base64 of the canary at any alignment inside a longer value: the three shifted cores.
    for shift in range(3):
        core = base64.b64encode(b"\0" * shift + raw)[4 if shift else 0 : -4]
        encoded.append(core)
    return encoded


def scan(folder: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in stack_files(folder):
        data = path.read_bytes()
        hits += [f"{path}: {needle!r}" for needle in needles if needle in data]
    return hits


def test_canary_never_reaches_a_stack_file(tmp_path: Path) -> None:
    spec = copy_example(
        "sovereign",
        tmp_path,
        edit=(("      name: sovereign-soul\n", f"      name: sovereign-soul   # sealed copy of {CANARY}\n"),),
        append=WAIVER,
    )
    assert CANARY in spec.read_text()
    out = tmp_path / "stacks"
    code, _, err = run_cli("compile", str(spec), "--out", str(out))
    assert code == 0, err
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 30
    assert scan(out, forms(CANARY)) == []


def test_committed_stacks_hold_no_secret_material() -> None:
    assert CANARY in (ROOT / "examples" / "sovereign" / "swarm.yaml").read_text()  # planted in the example
    stacks = ROOT / "stacks"
    assert len(stack_files(stacks)) > 50
    assert scan(stacks, forms(CANARY)) == []
    for path in stack_files(stacks):
        text = path.read_bytes().decode("utf-8")
        assert not PRIVATE_KEY.search(text), path
        assert not re.search(r"^kind: Secret$", text, re.M), path


def test_the_scanner_finds_a_canary(tmp_path: Path) -> None:
    (tmp_path / "leak.bin").write_bytes(b"\x00prefix" + base64.b64encode(b"xy" + CANARY.encode()) + b"\xff")
    assert scan(tmp_path, forms(CANARY)) != []
