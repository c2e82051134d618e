"""The recommended `app.kubernetes.io/*` labels plus pyagent's own selector labels."""

from __future__ import annotations

from pyagent_compile import __version__
from pyagent_compile.model.spec import Swarm

SWARM = "pyagent.dev/swarm"
POOL = "pyagent.dev/pool"
VOTER = "pyagent.dev/voter"
JURISDICTION = "pyagent.dev/jurisdiction"
SOURCE = "pyagent.dev/source"
CONFIG_HASH = "pyagent.dev/config-sha256"


def core_label(core: str) -> str:
    return f"core.pyagent.dev/{core}"


def common(swarm: Swarm, env: str, component: str) -> dict[str, str]:
    labels = dict(swarm.metadata.labels)
    labels.update(
        {
            "app.kubernetes.io/name": "pyagent-node",
            "app.kubernetes.io/instance": f"{swarm.metadata.name}-{env}",
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": swarm.metadata.name,
            "app.kubernetes.io/managed-by": "pyagent",
            "app.kubernetes.io/version": __version__,
            SWARM: swarm.metadata.name,
        }
    )
    return labels


def swarm_selector(swarm: Swarm) -> dict[str, str]:
    return {SWARM: swarm.metadata.name}


def pool_selector(swarm: Swarm, pool: str) -> dict[str, str]:
    return {SWARM: swarm.metadata.name, POOL: pool}
