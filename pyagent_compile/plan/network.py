"""The peer Service and the firewall as NetworkPolicies: default deny, then exactly what the
swarm needs (peer traffic, DNS) and what the spec's rules allow."""

from __future__ import annotations

from typing import Any

from pyagent_compile.model.spec import Endpoint, FirewallRule, Swarm
from pyagent_compile.plan import labels, naming
from pyagent_compile.plan.model import PlannedObject
from pyagent_compile.plan.workloads import meta

NETPOL = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}


def peer_service_object(swarm: Swarm, env: str, ns: str) -> PlannedObject:
    ports = swarm.mesh.ports
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(swarm, env, naming.peer_service(swarm.metadata.name), "mesh", "mesh", ns),
        "spec": {
            "clusterIP": "None",
            # Raft peers must find each other before they are ready: they become ready by electing.
            "publishNotReadyAddresses": True,
            "selector": labels.swarm_selector(swarm),
            "ports": [
                {"name": n, "port": getattr(ports, n), "targetPort": n, "protocol": "TCP"}
                for n in ("mesh", "raft", "grpc")
            ],
        },
    }
    return PlannedObject(body, ("mesh",))


def policy_body(swarm: Swarm, env: str, ns: str, suffix: str, source: str, spec: dict[str, Any]) -> dict[str, Any]:
    name = naming.policy(swarm.metadata.name, suffix)
    return {**NETPOL, "metadata": meta(swarm, env, name, "firewall", source, ns), "spec": spec}


def baseline_policies(swarm: Swarm, env: str, ns: str) -> list[PlannedObject]:
    ports = swarm.mesh.ports
    peer_ports = [{"port": getattr(ports, n), "protocol": "TCP"} for n in ("mesh", "raft", "grpc")]
    swarm_pods = {"podSelector": {"matchLabels": labels.swarm_selector(swarm)}}
    deny = policy_body(
        swarm, env, ns, "default-deny", "firewall.default", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    )
    peers = policy_body(
        swarm,
        env,
        ns,
        "allow-peers",
        "mesh.ports",
        {
            "podSelector": {"matchLabels": labels.swarm_selector(swarm)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [swarm_pods], "ports": peer_ports}],
            "egress": [{"to": [swarm_pods], "ports": peer_ports}],
        },
    )
    dns = policy_body(
        swarm,
        env,
        ns,
        "allow-dns",
        "mesh.discovery",
        {
            "podSelector": {"matchLabels": labels.swarm_selector(swarm)},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                }
            ],
        },
    )
    return [
        PlannedObject(deny, ("firewall",)),
        PlannedObject(peers, ("mesh", "ports")),
        PlannedObject(dns, ("mesh", "discovery")),
        PlannedObject(kubernetes_api_policy(swarm, env, ns), ("firewall", "kubernetesApi")),
    ]


def kubernetes_api_policy(swarm: Swarm, env: str, ns: str) -> dict[str, Any]:
    """Voters talk to the API server (admission.rs reviews joiners' tokens and reads pods and
    StatefulSets; scale.rs reads replica counts); nothing else of the swarm does."""
    api = swarm.firewall.kubernetes_api
    voters = {**labels.swarm_selector(swarm), labels.VOTER: "true"}
    return policy_body(
        swarm,
        env,
        ns,
        "allow-kube-api",
        "firewall.kubernetesApi",
        {
            "podSelector": {"matchLabels": voters},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": cidr}} for cidr in api.cidrs],
                    "ports": [{"port": port, "protocol": "TCP"} for port in sorted(set(api.ports))],
                }
            ],
        },
    )


def _selector(swarm: Swarm, endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.pool is not None:
        return {"matchLabels": labels.pool_selector(swarm, endpoint.pool)}
    if endpoint.core is not None:
        return {"matchLabels": {**labels.swarm_selector(swarm), labels.core_label(endpoint.core): "true"}}
    return {"matchLabels": labels.swarm_selector(swarm)}


def _peer(swarm: Swarm, endpoint: Endpoint) -> list[dict[str, Any]]:
    if endpoint.cidrs is not None:
        return [{"ipBlock": {"cidr": cidr}} for cidr in sorted(endpoint.cidrs)]
    return [{"podSelector": _selector(swarm, endpoint)}]


def rule_policies(swarm: Swarm, env: str, ns: str) -> list[PlannedObject]:
    out = []
    for index, rule in enumerate(swarm.firewall.rules):
        source = f"firewall.rules[{index}]"
        ports = [{"port": p.port, "protocol": p.protocol} for p in rule.ports]
        if rule.to.cidrs is None:
            out.append(PlannedObject(_ingress(swarm, env, ns, rule, source, ports), ("firewall", "rules", index)))
        if rule.source.cidrs is None:
            out.append(PlannedObject(_egress(swarm, env, ns, rule, source, ports), ("firewall", "rules", index)))
    return out


def _ingress(swarm: Swarm, env: str, ns: str, rule: FirewallRule, source: str, ports: list[Any]) -> dict[str, Any]:
    return policy_body(
        swarm,
        env,
        ns,
        f"fw-{rule.name}-in",
        source,
        {
            "podSelector": _selector(swarm, rule.to),
            "policyTypes": ["Ingress"],
            "ingress": [{"from": _peer(swarm, rule.source), "ports": ports}],
        },
    )


def _egress(swarm: Swarm, env: str, ns: str, rule: FirewallRule, source: str, ports: list[Any]) -> dict[str, Any]:
    return policy_body(
        swarm,
        env,
        ns,
        f"fw-{rule.name}-out",
        source,
        {
            "podSelector": _selector(swarm, rule.source),
            "policyTypes": ["Egress"],
            "egress": [{"to": _peer(swarm, rule.to), "ports": ports}],
        },
    )
