"""pyagent's CrossGuard policy pack (see pack.py and docs/policies.md)."""

from pack import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(
    name="pyagent",
    policies=POLICIES,
    description="Data sovereignty, zero-trust firewall and hygiene rules shared with `pyagent policy check`.",
)
