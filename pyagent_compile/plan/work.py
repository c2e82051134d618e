"""`work.json` (contracts/work.py) from the spec: manifests normalised for the daemon (durations
in ms, kind settings apart), each core's resources in base units and MCP servers, whether a core's
sandbox steps may use the network (the firewall allows its pools traffic to external CIDRs), and
each core's model (the server to ask, its sampling settings, where its API key is found)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyagent_compile.contracts import work as contract
from pyagent_compile.model.quantity import parse_duration, parse_quantity
from pyagent_compile.model.spec import Core, Manifest, Swarm

# Step fields that the contract has a place for; the rest of a kind's settings go to `params`.
COMMON_STEP_FIELDS = {"id", "kind", "after", "inputs", "timeout", "retries", "command", "image", "core", "manifest"}


# Kubernetes mounts each core's model API key here, one file per core (plan/workloads.py).
MODEL_KEYS_DIR = "/etc/pyagent/model-keys"


def api_key_env(core: str) -> str:
    """The environment variable that carries a core's model API key on its nodes. Core names
    are DNS labels (no `_`), so `-` to `_` keeps names apart."""
    return "PYAGENT_MODEL_KEY_" + core.upper().replace("-", "_")


def core_model(name: str, core: Core) -> contract.Model | None:
    model = core.model
    if model is None:
        return None
    if isinstance(model, str):
        return contract.Model(name=model, endpoint=None, api_key=None, temperature=None, seed=None, max_tokens=None)
    api_key = None
    if model.api_key is not None:
        secret = contract.SecretKey(name=model.api_key.secret, key=model.api_key.key)
        api_key = contract.ApiKey(env=api_key_env(name), file=f"{MODEL_KEYS_DIR}/{name}", secret=secret)
    return contract.Model(
        name=model.name,
        endpoint=model.endpoint,
        api_key=api_key,
        temperature=model.temperature,
        seed=model.seed,
        max_tokens=model.max_tokens,
    )


def _base_units(quantity: str | int | float | None, scale: int = 1) -> int:
    return int(parse_quantity(quantity) * scale) if quantity is not None else 0


def core_resources(core: Core) -> contract.CoreResources:
    r = core.resources
    return contract.CoreResources(
        cpu_millis=_base_units(r.cpu, 1000),
        memory_bytes=_base_units(r.memory),
        gpu_memory_bytes=_base_units(r.gpu_memory),
    )


def tool_servers(core: Core) -> list[contract.ToolServer]:
    return [
        contract.ToolServer(name=t.name, transport=t.transport, command=list(t.command), url=t.url, port=t.port)
        for t in core.tools
    ]


def network_allowed(swarm: Swarm, core: str) -> bool:
    """True if a firewall rule lets the core's pools (or the whole swarm) reach external CIDRs."""
    pools = {name for name, pool in swarm.nodes.items() if core in pool.cores}
    for rule in swarm.firewall.rules:
        source = rule.source
        from_core = source.swarm or source.core == core or (source.pool is not None and source.pool in pools)
        if from_core and rule.to.cidrs:
            return True
    return False


def _step(step: Any, network: bool) -> contract.Step:
    raw: dict[str, Any] = step.model_dump(mode="json", by_alias=True)
    params = {k: v for k, v in raw.items() if k not in COMMON_STEP_FIELDS}
    return contract.Step(
        id=step.id,
        kind=step.kind,
        after=list(step.after),
        inputs=dict(sorted(step.inputs.items())),
        timeout_ms=parse_duration(step.timeout) * 1000,
        retries=step.retries,
        command=list(raw["command"]) if "command" in raw else None,
        network=network and step.kind == "sandbox",
        image=raw.get("image"),
        core=raw.get("core"),
        manifest=raw.get("manifest"),
        params=params or None,
    )


def _manifest(swarm: Swarm, name: str, m: Manifest) -> contract.Manifest:
    network = network_allowed(swarm, m.core)
    return contract.Manifest(
        name=name,
        core=m.core,
        inputs=dict(sorted(m.inputs.items())),
        outputs={
            k: contract.Output.model_validate({"type": o.type, "from": o.source}) for k, o in sorted(m.outputs.items())
        },
        steps=[_step(s, network) for s in m.steps],
    )


def work_file(swarm: Swarm, scenarios: Mapping[str, contract.Scenario] | None = None) -> contract.WorkFile:
    return contract.WorkFile(
        swarm=swarm.metadata.name,
        cores={name: core_resources(core) for name, core in sorted(swarm.cores.items())},
        manifests={name: _manifest(swarm, name, m) for name, m in sorted(swarm.manifests.items())},
        tools={name: tool_servers(core) for name, core in sorted(swarm.cores.items()) if core.tools},
        models={name: m for name, core in sorted(swarm.cores.items()) if (m := core_model(name, core)) is not None},
        scenarios=dict(sorted((scenarios or {}).items())),
    )
