"""`up`: starts the parts in order, each only after the one before it is healthy.

etcd -> kube-apiserver -> kube-controller-manager, kube-scheduler -> containerd (+ images) -> kubelet
(node Ready) -> kube-proxy -> kube-router's firewall (NetworkPolicies) -> CoreDNS and the persistent
volumes. Any part that does not come up stops
`up` with one line naming it and its log; `down` then cleans whatever did start.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.cluster import addons, configs, down, images, kube, layout, pki, tools
from tests.e2e.cluster.layout import Facts, Paths
from tests.e2e.cluster.procs import PartFailed, start, wait_until

# Generous: the machine has 2 cores that other builds share.
TIMEOUT = 180.0
PORTS = (
    "etcd-client",
    "etcd-peer",
    "etcd-metrics",
    "apiserver",
    "controller-manager",
    "scheduler",
    "kubelet",
    "kubelet-healthz",
    "kube-proxy-healthz",
    "kube-proxy-metrics",
    "kube-router-health",
)
SYSCTLS = {
    "net/ipv4/ip_forward": "1",  # pods' traffic to the host and Services is routed
    # Service traffic between two pods on the bridge must pass kube-proxy's nftables DNAT both ways
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/bridge/bridge-nf-call-ip6tables": "1",
}
# The kubelet sets these itself when it starts (protectKernelDefaults: false; with true it refuses to start
# unless they already have its values): `up` records them and `down` puts back what the machine had.
KUBELET_TUNABLES = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
RUNTIME_DIRS = ("etcd", "containerd", "kubelet", "pod-logs", "cni", "volumes", "pids")


class Refused(PartFailed):
    """`up` refused before starting anything (not root, or a cluster is already on the machine): nothing to clean."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sysctl(name: str, value: str | None = None) -> str:
    path = Path("/proc/sys") / name
    if value is not None:
        path.write_text(value)
    return path.read_text().strip()


def _bin(name: str) -> str:
    return str(tools.KUBERNETES.bin / name)


def prepare(paths: Paths) -> Facts:
    for d in RUNTIME_DIRS:
        shutil.rmtree(paths.state / d, ignore_errors=True)
    paths.make()
    facts = Facts(host_ip=layout.host_ip())
    facts.ports = {name: layout.free_port() for name in PORTS}
    facts.sysctls = {name: _sysctl(name) for name in (*SYSCTLS, *KUBELET_TUNABLES)}
    facts.created = [f for f in layout.SYSTEM_FOLDERS if not Path(f).exists()]
    facts.nft_tables = down.nft_tables()
    facts.save(paths.state)
    for name, value in SYSCTLS.items():
        _sysctl(name, value)
    (paths.state / "resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
    return facts


def etcd(paths: Paths, facts: Facts) -> None:
    p = facts.ports
    client, peer = f"http://127.0.0.1:{p['etcd-client']}", f"http://127.0.0.1:{p['etcd-peer']}"
    argv = [
        str(tools.ETCD.bin / "etcd"),
        "--name=pyagent-e2e",
        f"--data-dir={paths.state / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=pyagent-e2e={peer}",
        f"--listen-metrics-urls=http://127.0.0.1:{p['etcd-metrics']}",
        "--initial-cluster-state=new",
    ]
    proc = start(paths, "etcd", argv)

    def healthy() -> bool:
        return bool(json.loads(_http(f"{client}/health")).get("health") == "true")

    wait_until("etcd", paths.log("etcd"), healthy, TIMEOUT, proc)


def _http(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


def credentials(paths: Paths, facts: Facts) -> dict[str, pki.Pair]:
    ca = pki.ca(paths.pki)
    folder = paths.pki
    out = {
        "ca": ca,
        "apiserver": pki.issue(
            folder,
            ca,
            "apiserver",
            "kube-apiserver",
            dns=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                f"kubernetes.default.svc.{layout.CLUSTER_DOMAIN}",
                "localhost",
            ),
            ips=("127.0.0.1", facts.host_ip, layout.KUBERNETES_SERVICE_IP),
        ),
        "apiserver-kubelet-client": pki.issue(
            folder, ca, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", groups=("system:masters",)
        ),
        "controller-manager": pki.issue(folder, ca, "controller-manager", "system:kube-controller-manager"),
        "scheduler": pki.issue(folder, ca, "scheduler", "system:kube-scheduler"),
        "kubelet-client": pki.issue(
            folder, ca, "kubelet-client", f"system:node:{layout.NODE_NAME}", groups=("system:nodes",)
        ),
        "kubelet-serving": pki.issue(
            folder,
            ca,
            "kubelet-serving",
            layout.NODE_NAME,
            dns=(layout.NODE_NAME, "localhost"),
            ips=("127.0.0.1", facts.host_ip),
        ),
        "kube-proxy": pki.issue(folder, ca, "kube-proxy", "system:kube-proxy"),
        "kube-router": pki.issue(folder, ca, "kube-router", addons.KUBE_ROUTER_USER),
        "sa": pki.service_account_keys(folder),
    }
    pki.admin_token(folder)
    return out


def apiserver(paths: Paths, facts: Facts, creds: dict[str, pki.Pair]) -> None:
    sa = creds["sa"]
    argv = [
        _bin("kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{facts.ports['etcd-client']}",
        "--bind-address=0.0.0.0",  # pods reach it through the `kubernetes` Service at the host's address
        f"--advertise-address={facts.host_ip}",
        f"--secure-port={facts.ports['apiserver']}",
        f"--tls-cert-file={creds['apiserver'].cert}",
        f"--tls-private-key-file={creds['apiserver'].key}",
        f"--client-ca-file={creds['ca'].cert}",
        f"--token-auth-file={paths.pki / 'tokens.csv'}",
        f"--kubelet-client-certificate={creds['apiserver-kubelet-client'].cert}",
        f"--kubelet-client-key={creds['apiserver-kubelet-client'].key}",
        f"--kubelet-certificate-authority={creds['ca'].cert}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--service-account-issuer=https://kubernetes.default.svc.{layout.CLUSTER_DOMAIN}",
        f"--service-account-key-file={sa.cert}",
        f"--service-account-signing-key-file={sa.key}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction,PodSecurity",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--allow-privileged=false",
        "--profiling=false",
        "--v=1",
    ]
    proc = start(paths, "kube-apiserver", argv)

    def ready() -> bool:
        return kube.get(paths, facts, "/readyz")[0] == 200

    wait_until("kube-apiserver", paths.log("kube-apiserver"), ready, TIMEOUT, proc)


def kubeconfigs(paths: Paths, facts: Facts, creds: dict[str, pki.Pair]) -> dict[str, Path]:
    configs.kubeconfig(paths.kubeconfig, paths, facts, {"token": kube.token(paths)})
    return {
        name: configs.kubeconfig(paths.pki / f"{name}.kubeconfig", paths, facts, configs.cert_user(creds[cert]))
        for name, cert in (
            ("controller-manager", "controller-manager"),
            ("scheduler", "scheduler"),
            ("kubelet", "kubelet-client"),
            ("kube-proxy", "kube-proxy"),
            ("kube-router", "kube-router"),
        )
    }


def control_plane(paths: Paths, facts: Facts, creds: dict[str, pki.Pair], kcs: dict[str, Path]) -> None:
    cm = [
        _bin("kube-controller-manager"),
        f"--kubeconfig={kcs['controller-manager']}",
        f"--authentication-kubeconfig={kcs['controller-manager']}",
        f"--authorization-kubeconfig={kcs['controller-manager']}",
        "--bind-address=127.0.0.1",
        f"--secure-port={facts.ports['controller-manager']}",
        f"--service-account-private-key-file={creds['sa'].key}",
        f"--root-ca-file={creds['ca'].cert}",
        f"--cluster-signing-cert-file={creds['ca'].cert}",
        f"--cluster-signing-key-file={creds['ca'].key}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--cluster-name=pyagent-e2e",
        "--leader-elect=false",
        "--profiling=false",
    ]
    scheduler = [
        _bin("kube-scheduler"),
        f"--kubeconfig={kcs['scheduler']}",
        f"--authentication-kubeconfig={kcs['scheduler']}",
        f"--authorization-kubeconfig={kcs['scheduler']}",
        "--bind-address=127.0.0.1",
        f"--secure-port={facts.ports['scheduler']}",
        "--leader-elect=false",
        "--profiling=false",
    ]
    procs = {
        "kube-controller-manager": (start(paths, "kube-controller-manager", cm), facts.ports["controller-manager"]),
        "kube-scheduler": (start(paths, "kube-scheduler", scheduler), facts.ports["scheduler"]),
    }
    for part, (proc, port) in procs.items():
        probe = functools.partial(kube.healthz, f"https://127.0.0.1:{port}/healthz")
        wait_until(part, paths.log(part), probe, TIMEOUT, proc)


def containerd(paths: Paths) -> None:
    config = configs.containerd(paths)
    proc = start(paths, "containerd", ["/usr/bin/containerd", "--config", str(config)])

    def serving() -> bool:
        argv = ["ctr", "--address", str(paths.containerd_socket), "version"]
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0

    wait_until("containerd", paths.log("containerd"), serving, TIMEOUT, proc)
    images.load_all(paths)


def cgroup_root() -> None:
    """The kubelet's cgroupRoot must exist in every cgroup v1 hierarchy; `down` removes it."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if hierarchy.name == "unified" or not (hierarchy / "cgroup.procs").exists():
            continue
        folder = hierarchy / layout.CGROUP_ROOT.lstrip("/")
        folder.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # a new cpuset is empty until given its parent's CPUs and memory nodes
            for name in ("cpuset.cpus", "cpuset.mems"):
                (folder / name).write_text((hierarchy / name).read_text())


def kubelet(paths: Paths, facts: Facts, creds: dict[str, pki.Pair], kcs: dict[str, Path]) -> None:
    configs.cni(paths)
    cgroup_root()
    config = configs.kubelet(paths, facts, creds["kubelet-serving"])
    argv = [
        _bin("kubelet"),
        f"--config={config}",
        f"--kubeconfig={kcs['kubelet']}",
        f"--root-dir={paths.kubelet_root}",
        f"--hostname-override={layout.NODE_NAME}",
        f"--node-ip={facts.host_ip}",
        "--v=1",
    ]
    proc = start(paths, "kubelet", argv)
    health = f"http://127.0.0.1:{facts.ports['kubelet-healthz']}/healthz"
    wait_until("kubelet", paths.log("kubelet"), lambda: kube.healthz(health), TIMEOUT, proc)

    def node_ready() -> bool:
        node = kube.get_json(paths, facts, f"/api/v1/nodes/{layout.NODE_NAME}")
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_until("kubelet (node Ready)", paths.log("kubelet"), node_ready, TIMEOUT, proc)


def kube_proxy(paths: Paths, facts: Facts, kcs: dict[str, Path]) -> None:
    config = configs.kube_proxy(paths, facts, kcs["kube-proxy"])
    proc = start(paths, "kube-proxy", [_bin("kube-proxy"), f"--config={config}", "--v=1"])
    health = f"http://127.0.0.1:{facts.ports['kube-proxy-healthz']}/healthz"
    wait_until("kube-proxy", paths.log("kube-proxy"), lambda: kube.healthz(health), TIMEOUT, proc)


def kube_router(paths: Paths, facts: Facts, kcs: dict[str, Path]) -> None:
    """kube-router as the NetworkPolicy controller only: it turns every NetworkPolicy into iptables rules
    and ipsets (filter table; kube-proxy's nftables tables are its own) for the pods on this node. It
    starts before any workload, so no pod ever runs unfiltered."""
    log = paths.log("kube-router")

    def rbac_applied() -> bool:
        kube.apply(paths, addons.kube_router_rbac())
        return True

    wait_until("kube-router (RBAC)", log, rbac_applied, 60)
    argv = [
        str(tools.KUBE_ROUTER.bin / "kube-router"),
        f"--kubeconfig={kcs['kube-router']}",
        f"--hostname-override={layout.NODE_NAME}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        f"--health-port={facts.ports['kube-router-health']}",
        "--metrics-port=0",
        "--v=1",
    ]
    proc = start(paths, "kube-router", argv)
    health = f"http://127.0.0.1:{facts.ports['kube-router-health']}/healthz"
    wait_until("kube-router", log, lambda: kube.healthz(health) and _firewall_chains(), TIMEOUT, proc)


def _firewall_chains() -> bool:
    """kube-router has made its top-level chains (its first full sync is done)."""
    rules = subprocess.run(["iptables", "-w", "-t", "filter", "-S"], capture_output=True, text=True, check=False)
    return "-N KUBE-ROUTER-FORWARD" in rules.stdout


def cluster_addons(paths: Paths, facts: Facts) -> None:
    log = paths.log("addons")

    def applied() -> bool:
        kube.apply(paths, addons.coredns() + addons.local_path(paths))
        return True

    wait_until("addons (apply)", log, applied, 60)

    def dns_ready() -> bool:
        d = kube.get_json(paths, facts, "/apis/apps/v1/namespaces/kube-system/deployments/coredns")
        return int(d.get("status", {}).get("readyReplicas", 0)) >= 1

    def provisioner_ready() -> bool:
        d = kube.get_json(
            paths, facts, f"/apis/apps/v1/namespaces/{addons.LOCAL_PATH_NS}/deployments/local-path-provisioner"
        )
        return int(d.get("status", {}).get("readyReplicas", 0)) >= 1

    for part, ready, ns in (
        ("coredns", dns_ready, "kube-system"),
        ("local-path-provisioner", provisioner_ready, addons.LOCAL_PATH_NS),
    ):
        try:
            wait_until(part, log, ready, TIMEOUT)
        except PartFailed as e:
            pods = kube.kubectl(paths, "-n", ns, "describe", "pods", check=False)
            log.write_text(pods.stdout + pods.stderr)
            raise PartFailed(f"{e} (and the kubelet's log: {paths.log('kubelet')})") from None


def up(paths: Paths) -> dict[str, float]:
    """Brings the cluster up; returns the seconds each step took."""
    # Refusals come before anything starts, and so before `down` could touch what another cluster owns.
    if os.geteuid() != 0:
        raise Refused("the cluster needs root (namespaces, mounts, cgroups, nftables): run it as root")
    missing = [t.name for t in tools.GO_TOOLS if not t.bin.is_dir()]
    if missing or not (tools.PAUSE_HOME / "bin" / "pause").exists():
        raise Refused(f"tools not built ({', '.join(missing) or 'pause'}): run `make cluster-tools` first")
    try:
        tools.check_debian()
    except tools.ToolError as e:
        raise Refused(str(e)) from None
    # One cluster per machine: the bridge, the pod subnet, the cgroup root and kube-proxy's nftables tables
    # have fixed names, so a second cluster (another state folder) would take the first one's.
    left = down.leftovers(paths)
    if left:
        raise Refused(f"a test cluster (or what is left of one) is on this machine: {left[0]}; `down` it first")
    timings: dict[str, float] = {}

    def step(name: str, fn: Callable[..., None], *args: Any) -> None:
        t0 = time.monotonic()
        _say(f"cluster: starting {name}")
        fn(*args)
        timings[name] = round(time.monotonic() - t0, 1)
        _say(f"cluster: {name} ready ({timings[name]} s)")

    try:
        facts = prepare(paths)
        creds = credentials(paths, facts)
    except (OSError, RuntimeError) as e:
        raise PartFailed(f"preparation of {paths.state}: {e}") from None
    step("etcd", etcd, paths, facts)
    step("kube-apiserver", apiserver, paths, facts, creds)
    kcs = kubeconfigs(paths, facts, creds)
    step("controller-manager+scheduler", control_plane, paths, facts, creds, kcs)
    step("containerd+images", containerd, paths)
    step("kubelet", kubelet, paths, facts, creds, kcs)
    step("kube-proxy", kube_proxy, paths, facts, kcs)
    step("kube-router", kube_router, paths, facts, kcs)
    step("coredns+local-path", cluster_addons, paths, facts)
    return timings
