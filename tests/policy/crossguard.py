"""Calling the CrossGuard pack's policies directly, as the Pulumi engine would, on resources
captured by Pulumi's mocks. Never constructs PolicyPack (that starts a gRPC server).

The properties are wrapped in pulumi_policy's `unknown_checking_proxy`, as its analyzer server wraps
what the engine sends (read-only Mapping/Sequence proxies, not dicts and lists): tests/e2e/test_pulumi.py
found that the pack passed everything nested under the real engine while it passed these tests with
plain dicts."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from tests.policy.helpers import ROOT

PACK_DIR = ROOT / "policies" / "pulumi"


def load_pack() -> ModuleType:
    """policies/pulumi/pack.py as a module (the pack folder is not a package)."""
    if "pyagent_crossguard_pack" in sys.modules:
        return sys.modules["pyagent_crossguard_pack"]
    spec = importlib.util.spec_from_file_location("pyagent_crossguard_pack", PACK_DIR / "pack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def _urn(resource: dict[str, Any]) -> str:
    return f"urn:pulumi:stack::project::{resource['type']}::{resource['name']}"


def _reporter(found: set[tuple[str, str]], name: str) -> Callable[[str, str | None], None]:
    def report(message: str, urn: str | None) -> None:
        found.add((message.split(":", 1)[0], name))

    return report


def run_pack(resources: list[dict[str, Any]], config: dict[str, Any]) -> set[tuple[str, str]]:
    """Every violation the pack reports on the captured resources: (rule id, logical name)."""
    pack = load_pack()
    found: set[tuple[str, str]] = set()
    by_urn = {_urn(r): r["name"] for r in resources}
    for policy in pack.POLICIES:
        policy_config = config.get(policy.name, {})
        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                args = ResourceValidationArgs(
                    resource["type"],
                    unknown_checking_proxy(resource["inputs"]),
                    _urn(resource),
                    resource["name"],
                    _options(),
                    None,
                    policy_config,
                )
                policy.validate(args, _reporter(found, resource["name"]))
        else:
            stack = [
                PolicyResource(
                    r["type"], unknown_checking_proxy(r["inputs"]), _urn(r), r["name"], _options(), None, None, [], {}
                )
                for r in resources
            ]
            policy.validate(
                StackValidationArgs(stack, policy_config),
                lambda message, urn: found.add((message.split(":", 1)[0], by_urn[urn or ""])),
            )
    return found
