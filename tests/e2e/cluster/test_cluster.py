"""The test cluster, used as the swarm will use it. Runs only with PYAGENT_E2E=1 (`make cluster-test`), as root.

When the cluster of $PYAGENT_CLUSTER_STATE (default `.tools/cluster-state`, where `make cluster-up` puts
it) is up, the tests use it and leave it up; otherwise they bring one up in a temporary folder, and after
the tests bring it down and check that no process, mount, network namespace, link, nftables table,
iptables chain or cgroup of it is left.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

if os.environ.get("PYAGENT_E2E") != "1":
    pytest.skip("end-to-end cluster tests run only with PYAGENT_E2E=1 (make cluster-test)", allow_module_level=True)

from tests.e2e.cluster import kube, layout, versions
from tests.e2e.cluster.layout import Paths

WAIT = "300s"  # generous: 2 cores shared with other builds


def kubectl(paths: Paths, *args: str, input: str | None = None) -> str:
    proc = kube.kubectl(paths, *args, input=input, check=False)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def apply(paths: Paths, objects: list[dict[str, Any]]) -> None:
    kubectl(
        paths,
        "apply",
        "--server-side",
        "--field-manager=pyagent-e2e-test",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )


# writes the pod's name into its volume, then serves that volume over HTTP; and writes to the second volume
SERVE = "hostname > /data/index.html && touch /keys/written && exec httpd -f -p 8080 -h /data"
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def statefulset(ns: str) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "peers", "namespace": ns},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": labels,
                "ports": [{"name": "http", "port": 8080}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "serviceName": "peers",
                "replicas": 2,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": True,  # the apiserver test uses the pod's token
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65534,
                            "runAsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "web",
                                "image": versions.TEST_IMAGE,
                                "imagePullPolicy": "Never",
                                "command": ["sh", "-c", SERVE],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
                                "securityContext": RESTRICTED_CONTAINER,
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/data"},
                                    {"name": "keys", "mountPath": "/keys"},
                                ],
                            }
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
                    },
                    {  # the class the swarm's stacks name
                        "metadata": {"name": "keys"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "encrypted-ssd",
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    },
                ],
            },
        },
    ]


@pytest.fixture(scope="module")
def web(cluster: Paths) -> Iterator[str]:
    ns = f"e2e-{secrets.token_hex(3)}"
    apply(cluster, statefulset(ns))
    kubectl(cluster, "-n", ns, "rollout", "status", "statefulset/web", f"--timeout={WAIT}")
    yield ns
    kubectl(cluster, "delete", "namespace", ns, "--wait=false")


def exec_in(paths: Paths, ns: str, pod: str, *cmd: str) -> str:
    return kubectl(paths, "-n", ns, "exec", pod, "--", *cmd)


def test_node_reports_the_pinned_version(cluster: Paths) -> None:
    node = json.loads(kubectl(cluster, "get", "node", layout.NODE_NAME, "-o", "json"))
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == versions.KUBERNETES
    assert info["containerRuntimeVersion"].startswith("containerd://1.6")


def test_restricted_namespace_rejects_a_root_pod(cluster: Paths, web: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": web},
        "spec": {"containers": [{"name": "c", "image": versions.TEST_IMAGE, "imagePullPolicy": "Never"}]},
    }
    proc = kube.kubectl(cluster, "apply", "--server-side", "-f", "-", input=json.dumps(pod), check=False)
    assert proc.returncode != 0 and 'violates PodSecurity "restricted:latest"' in proc.stderr


def test_claims_bound_to_volumes(cluster: Paths, web: str) -> None:
    claims = json.loads(kubectl(cluster, "-n", web, "get", "pvc", "-o", "json"))["items"]
    by_name = {c["metadata"]["name"]: c for c in claims}
    assert sorted(by_name) == ["data-web-0", "data-web-1", "keys-web-0", "keys-web-1"]
    assert all(c["status"]["phase"] == "Bound" for c in claims)
    # provisioned on demand by local-path-provisioner: the default class for claims that name none
    assert by_name["data-web-0"]["spec"]["storageClassName"] == "local-path"
    assert by_name["keys-web-0"]["spec"]["storageClassName"] == "encrypted-ssd"
    for claim in claims:
        pv = json.loads(kubectl(cluster, "get", "pv", claim["spec"]["volumeName"], "-o", "json"))
        assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"
        assert pv["spec"]["capacity"]["storage"] == claim["spec"]["resources"]["requests"]["storage"]


def test_peer_name_resolves_through_coredns_and_connects(cluster: Paths, web: str) -> None:
    pod_ip = kubectl(cluster, "-n", web, "get", "pod", "web-1", "-o", "jsonpath={.status.podIP}")
    name = f"web-1.peers.{web}.svc.{layout.CLUSTER_DOMAIN}"
    answer = exec_in(cluster, web, "web-0", "nslookup", name)
    assert f"Server:\t\t{layout.DNS_SERVICE_IP}" in answer and f"Address: {pod_ip}" in answer, answer
    # TCP to the peer by its stable name (busybox nc resolves it again); it answers with what it wrote to its volume
    reply = exec_in(cluster, web, "web-0", "sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {name} 8080")
    assert reply.startswith("HTTP/1.") and reply.rstrip().endswith("web-1"), reply


SA = "/var/run/secrets/kubernetes.io/serviceaccount"
IN_POD_KUBECTL = (
    f"kubectl --cache-dir=/tmp/kube --server=https://kubernetes.default.svc --certificate-authority={SA}/ca.crt"
    f' --token="$(cat {SA}/token)"'
)


def test_apiserver_answers_at_its_service_name(cluster: Paths, web: str) -> None:
    # kubectl (Go's resolver and TLS) from a pod, by the Service's name, checking the serving certificate
    out = exec_in(cluster, web, "web-0", "sh", "-c", f"{IN_POD_KUBECTL} get --raw /version")
    assert json.loads(out)["gitVersion"] == versions.KUBERNETES
    # the pod's service-account token authenticates it, and RBAC gives it nothing
    proc = kube.kubectl(
        cluster, "-n", web, "exec", "web-0", "--", "sh", "-c", f"{IN_POD_KUBECTL} get pods", check=False
    )
    assert f'User "system:serviceaccount:{web}:default" cannot list resource "pods"' in proc.stderr, proc.stderr


def test_host_reaches_pod_ip(cluster: Paths, web: str) -> None:
    pod_ip = kubectl(cluster, "-n", web, "get", "pod", "web-0", "-o", "jsonpath={.status.podIP}")
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://{pod_ip}:8080/", timeout=5) as resp:
                assert resp.read().decode().strip() == "web-0"
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
