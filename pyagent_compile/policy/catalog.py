"""The rule catalog, policies/rules.yaml: ids, severities, scopes, tiers, rationale and hints."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from pyagent_compile import resources

Severity = Literal["mandatory", "advisory"]
Scope = Literal["object", "stack", "spec"]

# The catalog sits beside the CrossGuard pack, at the repository root (policies/), and ships in
# the package through _data/ (pyagent_compile/resources.py).
CATALOG_PATH = resources.POLICY_CATALOG


@dataclass(frozen=True)
class RuleInfo:
    id: str
    name: str
    severity: Severity
    scope: Scope
    tiers: tuple[str, ...]
    rationale: str
    hint: str

    def applies_to(self, tier: str) -> bool:
        return tier in self.tiers


@cache
def load_catalog(path: Path = CATALOG_PATH) -> dict[str, RuleInfo]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, RuleInfo] = {}
    for entry in raw["rules"]:
        severity, scope = entry["severity"], entry["scope"]
        if severity not in ("mandatory", "advisory") or scope not in ("object", "stack", "spec"):
            raise ValueError(f"{path}: rule {entry.get('id')}: bad severity or scope")
        out[entry["id"]] = RuleInfo(
            entry["id"], entry["name"], severity, scope, tuple(entry["tiers"]), entry["rationale"], entry["hint"]
        )
    return out
