"""Namespace, service account, config maps, StatefulSets and the Raft disruption budget."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pyagent_compile.canonical import to_json as canonical_json
from pyagent_compile.contracts import work as contract
from pyagent_compile.contracts.node_config import NodeConfig
from pyagent_compile.model.gpus import GPU_CATALOG
from pyagent_compile.model.quantity import format_quantity
from pyagent_compile.model.resources import voter_count
from pyagent_compile.model.spec import Model, Pool, Swarm
from pyagent_compile.plan import labels, naming, node_image
from pyagent_compile.plan.model import PlannedObject
from pyagent_compile.plan.nodeconfig import DATA_DIR, SOUL_DIR
from pyagent_compile.plan.work import MODEL_KEYS_DIR, work_file

RUN_AS = 10001


def image_of(swarm: Swarm) -> str:
    if swarm.image.ref is not None:
        return swarm.image.ref
    # `build: native`: the image `make image` built from native/, by the digest it recorded.
    return node_image.pinned(swarm.image.repository)


def meta(swarm: Swarm, env: str, name: str, component: str, source: str, ns: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "labels": labels.common(swarm, env, component),
        "annotations": {labels.SOURCE: source},
    }
    if ns is not None:
        body["namespace"] = ns
    return body


def namespace_object(swarm: Swarm, env: str, ns: str) -> PlannedObject:
    metadata = meta(swarm, env, ns, "swarm", "metadata", None)
    # Pod Security Admission: the node image runs as non-root with a read-only root file system.
    metadata["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    return PlannedObject(body, ("metadata",))


def service_account_object(swarm: Swarm, env: str, ns: str) -> PlannedObject:
    body = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(swarm, env, naming.service_account(swarm.metadata.name), "swarm", "metadata", ns),
        "automountServiceAccountToken": False,
    }
    return PlannedObject(body, ("metadata",))


def config_map(swarm: Swarm, env: str, ns: str, name: str, source: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(swarm, env, name, "config", source, ns),
        "data": data,
    }


def manifests_object(
    swarm: Swarm, env: str, ns: str, scenarios: Mapping[str, contract.Scenario] | None = None
) -> PlannedObject:
    manifests = {name: m.model_dump(mode="json", by_alias=True) for name, m in swarm.manifests.items()}
    data = {
        "manifests.json": canonical_json(manifests),
        "work.json": canonical_json(work_file(swarm, scenarios).to_json()),
    }
    name = naming.manifests_config(swarm.metadata.name)
    return PlannedObject(config_map(swarm, env, ns, name, "manifests", data), ("manifests",))


def pool_config_object(swarm: Swarm, env: str, ns: str, pool: str, config: NodeConfig) -> PlannedObject:
    name = naming.pool_config(swarm.metadata.name, pool)
    body = config_map(swarm, env, ns, name, f"nodes.{pool}", {"node.json": canonical_json(config.to_json())})
    return PlannedObject(body, ("nodes", pool))


def disruption_budget_object(swarm: Swarm, env: str, ns: str) -> PlannedObject:
    voters = voter_count(swarm)
    body = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(swarm, env, naming.disruption_budget(swarm.metadata.name), "consensus", "consensus", ns),
        # Voluntary evictions may never take the Raft group below a majority.
        "spec": {
            "minAvailable": voters // 2 + 1,
            "selector": {"matchLabels": {**labels.swarm_selector(swarm), labels.VOTER: "true"}},
        },
    }
    return PlannedObject(body, ("consensus",))


def statefulset_object(swarm: Swarm, env: str, ns: str, pool_name: str, config: NodeConfig) -> PlannedObject:
    pool = swarm.nodes[pool_name]
    name = naming.statefulset(swarm.metadata.name, pool_name)
    selector = labels.pool_selector(swarm, pool_name)
    pod_labels = {
        **labels.common(swarm, env, pool_name),
        **selector,
        labels.VOTER: "true" if "voter" in pool.roles else "false",
    }
    pod_labels.update({labels.core_label(core): "true" for core in pool.cores})
    metadata = meta(swarm, env, name, pool_name, f"nodes.{pool_name}", ns)
    if pool.placement.jurisdiction is not None:
        # Where the pods' data lives, readable from the object alone: the policy pack that
        # guards `pulumi up` checks it against the allowed jurisdictions (PA502).
        pod_labels[labels.JURISDICTION] = pool.placement.jurisdiction
        metadata["labels"][labels.JURISDICTION] = pool.placement.jurisdiction
    config_hash = hashlib.sha256(canonical_json(config.to_json()).encode()).hexdigest()
    body = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata,
        "spec": {
            "serviceName": naming.peer_service(swarm.metadata.name),
            "replicas": pool.replicas,
            # Raft members must all start to elect a leader; ordered start would deadlock.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {labels.CONFIG_HASH: config_hash, labels.SOURCE: f"nodes.{pool_name}"},
                },
                "spec": _pod_spec(swarm, pool_name, pool),
            },
            "volumeClaimTemplates": [_data_claim(pool)],
        },
    }
    return PlannedObject(body, ("nodes", pool_name))


def _data_claim(pool: Pool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": format_quantity(pool.hardware.storage)}},
    }
    if pool.hardware.storage_class is not None:
        spec["storageClassName"] = pool.hardware.storage_class
    return {"metadata": {"name": "data"}, "spec": spec}


def _pod_spec(swarm: Swarm, pool_name: str, pool: Pool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": naming.service_account(swarm.metadata.name),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(swarm, pool)],
        "volumes": _volumes(swarm, pool_name, "voter" in pool.roles),
        "topologySpreadConstraints": [_spread(swarm, pool_name, "kubernetes.io/hostname", "ScheduleAnyway")],
    }
    if pool.placement.zones:
        spec["topologySpreadConstraints"].insert(
            0, _spread(swarm, pool_name, "topology.kubernetes.io/zone", "DoNotSchedule")
        )
    affinity = _node_affinity(pool)
    if affinity:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": affinity}]
                }
            }
        }
    gpu = pool.hardware.gpu
    if gpu is not None and gpu.model in GPU_CATALOG:
        model = GPU_CATALOG[gpu.model]
        spec["nodeSelector"] = {model.label_key: model.label}
        spec["tolerations"] = [{"key": model.resource, "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def _spread(swarm: Swarm, pool_name: str, key: str, when: str) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": labels.pool_selector(swarm, pool_name)},
    }


def _node_affinity(pool: Pool) -> list[dict[str, Any]]:
    rules = []
    if pool.placement.region:
        rules.append({"key": "topology.kubernetes.io/region", "operator": "In", "values": [pool.placement.region]})
    if pool.placement.zones:
        rules.append({"key": "topology.kubernetes.io/zone", "operator": "In", "values": sorted(pool.placement.zones)})
    return rules


def _container(swarm: Swarm, pool: Pool) -> dict[str, Any]:
    ports = swarm.mesh.ports
    cpu, memory = format_quantity(pool.hardware.cpu), format_quantity(pool.hardware.memory)
    limits: dict[str, str] = {"cpu": cpu, "memory": memory}
    gpu = pool.hardware.gpu
    if gpu is not None and gpu.model in GPU_CATALOG:
        limits[GPU_CATALOG[gpu.model].resource] = str(gpu.count)
    # Ready: the node knows a leader (a joining pod is not ready until admitted). Alive: the
    # process answers. Liveness must not depend on the swarm: a quorum lost for a minute would
    # otherwise have the kubelet restart every pod of it, over and over.
    ready = {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 10}
    alive = {"httpGet": {"path": "/livez", "port": "metrics"}, "periodSeconds": 10}
    return {
        "name": "node",
        "image": image_of(swarm),
        "imagePullPolicy": _pull_policy(swarm),
        "args": ["--config", "/etc/pyagent/node.json"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "ports": [
            {"name": n, "containerPort": getattr(ports, n), "protocol": "TCP"}
            for n in ("mesh", "raft", "grpc", "metrics")
        ],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "readinessProbe": ready,
        "livenessProbe": {**alive, "failureThreshold": 6},
        "volumeMounts": _mounts(swarm, "voter" in pool.roles, bool(_model_key_sources(swarm, pool))),
    }


def _model_key_sources(swarm: Swarm, pool: Pool) -> list[dict[str, Any]]:
    """The API keys of the models of the cores the pool runs, from their Secrets by reference,
    each as the file work.json names (`models.<core>.apiKey.file`): files, not environment
    variables, which every process of the pod and `kubectl describe` would show."""
    sources = []
    for core in sorted(pool.cores):
        model = swarm.cores[core].model if core in swarm.cores else None
        if isinstance(model, Model) and model.api_key is not None:
            item = {"key": model.api_key.key, "path": core}
            sources.append({"secret": {"name": model.api_key.secret, "items": [item]}})
    return sources


def _pull_policy(swarm: Swarm) -> str:
    """A digest never changes, and a locally built image (`build: native`, pinned by digest and
    imported into the node's containerd, kind or minikube) may exist only on the node; a registry
    tag can be moved, so it is pulled every time."""
    ref = swarm.image.ref
    if ref is None or "@sha256:" in ref:
        return "IfNotPresent"
    return "Always"


# Tokens are projected explicitly (the service account never auto-mounts one, PA524): every pod
# gets a token for the audience JOIN_AUDIENCE only, which it sends with its Join request and
# which is worth nothing to the API server; voter pods, one of which leads and admits joiners,
# also get an API token, with exactly the layout of the standard in-cluster credentials
# (native/crates/pyagent-node/src/admission.rs reads both).
JOIN_AUDIENCE = "pyagent.dev/join"
JOIN_TOKEN_DIR = "/var/run/secrets/pyagent.dev/join"
API_ACCESS_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 3600


def _join_token_volume() -> dict[str, Any]:
    token = {"audience": JOIN_AUDIENCE, "expirationSeconds": TOKEN_SECONDS, "path": "token"}
    return {"name": "join-token", "projected": {"defaultMode": 0o440, "sources": [{"serviceAccountToken": token}]}}


def _api_access_volume() -> dict[str, Any]:
    sources = [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]
    return {"name": "kube-api-access", "projected": {"defaultMode": 0o440, "sources": sources}}


def admission_rbac_objects(swarm: Swarm, env: str, ns: str) -> list[PlannedObject]:
    """What the leader needs to admit joiners (admission.rs): review tokens (the built-in
    `system:auth-delegator` role, cluster-wide by nature) and read the swarm's pods and
    StatefulSets, in its own namespace only."""
    name = swarm.metadata.name
    account = {"kind": "ServiceAccount", "name": naming.service_account(name), "namespace": ns}
    role = naming.admission_role(name)
    role_body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(swarm, env, role, "consensus", "consensus", ns),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(swarm, env, role, "consensus", "consensus", ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [account],
    }
    reviewer = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(swarm, env, naming.token_reviewer(ns), "consensus", "consensus", None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [account],
    }
    return [PlannedObject(body, ("consensus",)) for body in (role_body, binding, reviewer)]


def _mounts(swarm: Swarm, voter: bool, model_keys: bool) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": "/etc/pyagent/node.json", "subPath": "node.json", "readOnly": True},
        {"name": "manifests", "mountPath": "/etc/pyagent/manifests", "readOnly": True},
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "join-token", "mountPath": JOIN_TOKEN_DIR, "readOnly": True},
    ]
    if voter:
        mounts.append({"name": "kube-api-access", "mountPath": API_ACCESS_DIR, "readOnly": True})
    if swarm.sovereignty.soul is not None:
        mounts.append({"name": "soul", "mountPath": SOUL_DIR, "readOnly": True})
    if model_keys:
        mounts.append({"name": "model-keys", "mountPath": MODEL_KEYS_DIR, "readOnly": True})
    return mounts


def _volumes(swarm: Swarm, pool_name: str, voter: bool) -> list[dict[str, Any]]:
    name = swarm.metadata.name
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": naming.pool_config(name, pool_name)}},
        {"name": "manifests", "configMap": {"name": naming.manifests_config(name)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        _join_token_volume(),
    ]
    if voter:
        volumes.append(_api_access_volume())
    soul = swarm.sovereignty.soul
    if soul is not None:
        # The soul's key is only referenced; its value never appears in a rendered file.
        volumes.append(
            {
                "name": "soul",
                "secret": {
                    "secretName": soul.secret_ref.name,
                    "defaultMode": 0o400,
                    "items": [{"key": soul.secret_ref.key, "path": soul.secret_ref.key}],
                },
            }
        )
    keys = _model_key_sources(swarm, swarm.nodes[pool_name])
    if keys:
        volumes.append({"name": "model-keys", "projected": {"defaultMode": 0o400, "sources": keys}})
    return volumes
