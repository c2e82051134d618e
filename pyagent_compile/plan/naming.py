"""The naming contract (versioned; changing it renames resources, so it changes only with
the plan's apiVersion). Documented in docs/naming.md.

- namespace            <swarm>-<env>
- service account      <swarm>-node
- peer service         <swarm>-peers          (headless, governs every StatefulSet)
- StatefulSet          <swarm>-<pool>
- pool ConfigMap       <swarm>-<pool>-config
- manifests ConfigMap  <swarm>-manifests
- NetworkPolicies      <swarm>-default-deny, <swarm>-allow-peers, <swarm>-allow-dns, <swarm>-allow-kube-api,
                       <swarm>-fw-<rule>-in / <swarm>-fw-<rule>-out
- PodDisruptionBudget  <swarm>-voters
- Pulumi logical name  <kind in lower case>/<name>

A name longer than Kubernetes allows is cut and given a stable 8-hex suffix of the
SHA-256 of the full name, so it stays unique and the same on every machine.
"""

from __future__ import annotations

import hashlib

PLAN_API_VERSION = "pyagent.dev/plan/v1alpha1"
DNS_LABEL_MAX = 63
# The StatefulSet controller adds `-<hash>` (11 characters) to the controller-revision-hash label.
STATEFULSET_MAX = 52


def fit(name: str, limit: int = DNS_LABEL_MAX) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def namespace(swarm: str, env: str) -> str:
    return fit(f"{swarm}-{env}")


def service_account(swarm: str) -> str:
    return fit(f"{swarm}-node")


def peer_service(swarm: str) -> str:
    return fit(f"{swarm}-peers")


def statefulset(swarm: str, pool: str) -> str:
    return fit(f"{swarm}-{pool}", STATEFULSET_MAX)


def pool_config(swarm: str, pool: str) -> str:
    return fit(f"{swarm}-{pool}-config")


def manifests_config(swarm: str) -> str:
    return fit(f"{swarm}-manifests")


def policy(swarm: str, suffix: str) -> str:
    return fit(f"{swarm}-{suffix}")


def admission_role(swarm: str) -> str:
    return fit(f"{swarm}-admission")


def token_reviewer(namespace: str) -> str:
    """Cluster-scoped: named after the namespace, which is unique to the swarm's environment."""
    return fit(f"pyagent-{namespace}-token-review")


def disruption_budget(swarm: str) -> str:
    return fit(f"{swarm}-voters")


def dashboard_config(swarm: str) -> str:
    return fit(f"{swarm}-dashboard")


def pod_monitor(swarm: str) -> str:
    return fit(f"{swarm}-nodes")


def logical_name(kind: str, name: str) -> str:
    return f"{kind.lower()}/{name}"
