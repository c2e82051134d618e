"""Stage 4: the plan, the resolved resource graph of one environment."""

from __future__ import annotations

from collections.abc import Mapping

from pyagent_compile.contracts import work as work_contract
from pyagent_compile.model.spec import Swarm
from pyagent_compile.plan import naming
from pyagent_compile.plan.model import ImageBuild, Plan, PlannedObject
from pyagent_compile.plan.network import baseline_policies, peer_service_object, rule_policies
from pyagent_compile.plan.nodeconfig import node_config
from pyagent_compile.plan.observability import build_dashboard, observability_objects
from pyagent_compile.plan.workloads import (
    admission_rbac_objects,
    disruption_budget_object,
    image_of,
    manifests_object,
    namespace_object,
    pool_config_object,
    service_account_object,
    statefulset_object,
)


def build_plan(
    swarm: Swarm, env: str, tier: str, scenarios: Mapping[str, work_contract.Scenario] | None = None
) -> Plan:
    """`scenarios`: those of work.json (plan/scenarios.py), by the path `verify` steps write."""
    name = swarm.metadata.name
    ns = naming.namespace(name, env)
    dashboard = build_dashboard(swarm, env, ns)
    configs = {pool: node_config(swarm, pool, ns) for pool in sorted(swarm.nodes)}
    objects: list[PlannedObject] = [
        namespace_object(swarm, env, ns),
        service_account_object(swarm, env, ns),
        *admission_rbac_objects(swarm, env, ns),
        manifests_object(swarm, env, ns, scenarios),
        peer_service_object(swarm, env, ns),
        disruption_budget_object(swarm, env, ns),
        *baseline_policies(swarm, env, ns),
        *rule_policies(swarm, env, ns),
        *observability_objects(swarm, env, ns, dashboard),
    ]
    for pool, config in configs.items():
        objects.append(pool_config_object(swarm, env, ns, pool, config))
        objects.append(statefulset_object(swarm, env, ns, pool, config))
    ordered = tuple(sorted(objects, key=PlannedObject.sort_key))
    build = None
    if swarm.image.build == "native":
        ports = swarm.mesh.ports
        build = ImageBuild(
            image_of(swarm), {"mesh": ports.mesh, "raft": ports.raft, "grpc": ports.grpc, "metrics": ports.metrics}
        )
    return Plan(
        swarm=name,
        environment=env,
        tier=tier,
        namespace=ns,
        objects=ordered,
        node_configs=configs,
        image_build=build,
        dashboard=dashboard,
    )


__all__ = ["Plan", "PlannedObject", "build_plan"]
