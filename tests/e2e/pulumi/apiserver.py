"""A Kubernetes control plane without nodes, for the Pulumi engine to deploy to: etcd, kube-apiserver and
kube-controller-manager on free loopback ports, in a folder of their own (no kubelet, no containerd).

The controller manager is there because deleting is not done without it: the Kubernetes provider deletes
with foreground propagation, which the garbage collector completes, and a namespace is removed by the
namespace controller. Nothing is scheduled and no pod runs: the StatefulSets' pods stay Pending.

Reuses the test cluster's parts (tests/e2e/cluster): its binaries (`make cluster-tools`), certificates
(pki), process handling (procs), kubeconfig writer and HTTPS probes (configs, kube).
"""

from __future__ import annotations

import contextlib
import functools
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.cluster import configs, kube, layout, pki, procs
from tests.e2e.cluster import tools as cluster_tools
from tests.e2e.cluster.layout import Facts, Paths

TIMEOUT = 300.0  # generous: 2 cores shared with builds
PARTS = ("kube-controller-manager", "kube-apiserver", "etcd")  # in the order they are stopped


@dataclass(frozen=True)
class ControlPlane:
    paths: Paths
    facts: Facts

    @property
    def kubeconfig(self) -> Path:
        return self.paths.kubeconfig

    @property
    def url(self) -> str:
        return kube.api_url(self.facts)

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        status, body = kube.get(self.paths, self.facts, path)
        return status, json.loads(body) if body.startswith(b"{") else {}

    def create(self, path: str, body: dict[str, Any]) -> None:
        """POSTs an object (a CRD, say) as the admin."""
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.paths.pki / "ca.crt"))
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {kube.token(self.paths)}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=ctx, timeout=30):
            pass


def binaries() -> tuple[Path, Path]:
    """The Kubernetes and etcd bin folders, built by `make cluster-tools` (built here if missing)."""
    return cluster_tools.build(cluster_tools.KUBERNETES), cluster_tools.build(cluster_tools.ETCD)


def _etcd(paths: Paths, facts: Facts, etcd_bin: Path) -> None:
    p = facts.ports
    client, peer = f"http://127.0.0.1:{p['etcd-client']}", f"http://127.0.0.1:{p['etcd-peer']}"
    argv = [
        str(etcd_bin / "etcd"),
        "--name=pyagent-pulumi",
        f"--data-dir={paths.state / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=pyagent-pulumi={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",  # a throwaway store; the disk is shared with builds
    ]
    proc = procs.start(paths, "etcd", argv, die_with_parent=True)

    def healthy() -> bool:
        with urllib.request.urlopen(f"{client}/health", timeout=5) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")

    procs.wait_until("etcd", paths.log("etcd"), healthy, TIMEOUT, proc)


def _apiserver(paths: Paths, facts: Facts, k8s_bin: Path, creds: dict[str, pki.Pair]) -> None:
    argv = [
        str(k8s_bin / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{facts.ports['etcd-client']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={facts.ports['apiserver']}",
        f"--tls-cert-file={creds['apiserver'].cert}",
        f"--tls-private-key-file={creds['apiserver'].key}",
        f"--client-ca-file={creds['ca'].cert}",
        f"--token-auth-file={paths.pki / 'tokens.csv'}",
        f"--service-account-issuer=https://kubernetes.default.svc.{layout.CLUSTER_DOMAIN}",
        f"--service-account-key-file={creds['sa'].cert}",
        f"--service-account-signing-key-file={creds['sa'].key}",
        "--authorization-mode=RBAC",
        "--enable-admission-plugins=PodSecurity",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--allow-privileged=false",
        "--profiling=false",
    ]
    proc = procs.start(paths, "kube-apiserver", argv, die_with_parent=True)
    procs.wait_until(
        "kube-apiserver",
        paths.log("kube-apiserver"),
        lambda: kube.get(paths, facts, "/readyz")[0] == 200,
        TIMEOUT,
        proc,
    )


def _controller_manager(paths: Paths, facts: Facts, k8s_bin: Path, creds: dict[str, pki.Pair]) -> None:
    kc = configs.kubeconfig(
        paths.pki / "controller-manager.kubeconfig", paths, facts, configs.cert_user(creds["controller-manager"])
    )
    argv = [
        str(k8s_bin / "kube-controller-manager"),
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={facts.ports['controller-manager']}",
        f"--service-account-private-key-file={creds['sa'].key}",
        f"--root-ca-file={creds['ca'].cert}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--cluster-name=pyagent-pulumi",
        "--leader-elect=false",
        "--profiling=false",
    ]
    proc = procs.start(paths, "kube-controller-manager", argv, die_with_parent=True)
    probe = functools.partial(kube.healthz, f"https://127.0.0.1:{facts.ports['controller-manager']}/healthz")
    procs.wait_until("kube-controller-manager", paths.log("kube-controller-manager"), probe, TIMEOUT, proc)


def start(state: Path) -> ControlPlane:
    """Starts the control plane in `state` (a fresh folder); on failure stops what it started and raises
    procs.PartFailed naming the part and its log."""
    k8s_bin, etcd_bin = binaries()
    paths = Paths(state.resolve())
    for d in (paths.logs, paths.pki, paths.pids):
        d.mkdir(parents=True, exist_ok=True)
    paths.pki.chmod(0o700)
    facts = Facts(host_ip="127.0.0.1")
    facts.ports = {p: layout.free_port() for p in ("etcd-client", "etcd-peer", "apiserver", "controller-manager")}
    facts.save(paths.state)
    ca = pki.ca(paths.pki)
    creds = {
        "ca": ca,
        "apiserver": pki.issue(paths.pki, ca, "apiserver", "kube-apiserver", dns=("localhost",), ips=("127.0.0.1",)),
        "controller-manager": pki.issue(paths.pki, ca, "controller-manager", "system:kube-controller-manager"),
        "sa": pki.service_account_keys(paths.pki),
    }
    pki.admin_token(paths.pki)
    plane = ControlPlane(paths, facts)
    try:
        _etcd(paths, facts, etcd_bin)
        _apiserver(paths, facts, k8s_bin, creds)
        configs.kubeconfig(paths.kubeconfig, paths, facts, {"token": kube.token(paths)})
        _controller_manager(paths, facts, k8s_bin, creds)
    except BaseException:
        stop(plane)
        raise
    return plane


def stop(plane: ControlPlane) -> list[str]:
    """Stops every part by the pid it saved; returns the parts that would not stop."""
    return [part for part in PARTS if procs.stop(plane.paths, part)]


@contextlib.contextmanager
def control_plane(state: Path) -> Iterator[ControlPlane]:
    plane = start(state)
    try:
        yield plane
    finally:
        left = stop(plane)
        if left:
            raise RuntimeError(f"these parts would not stop: {', '.join(left)}")
