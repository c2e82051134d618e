"""Where everything of one test cluster lives: a state folder, and the run-time facts saved in it.

Nothing goes to the system's defaults (/var/lib/kubelet, /var/lib/containerd, /etc/cni, /run/containerd):
each part is pointed into the state folder, so `down` knows what is ours by its path.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.e2e.cluster.tools import ROOT

DEFAULT_STATE = ROOT / ".tools" / "cluster-state"

NODE_NAME = "pyagent-e2e"
CLUSTER_DOMAIN = "cluster.local"
# One node, so one pod subnet; the service range is Kubernetes' usual one. The bridge and the
# cgroup root carry the project's name so that `down` removes only what is ours.
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
BRIDGE = "pyagent-e2e0"
CNI_NETWORK = "pyagent-e2e"
CGROUP_ROOT = "/pyagent-e2e"
# Folders that the kubelet and containerd 1.6 use whatever they are told (the kubelet's device-plugin
# socket folder and /var/log/containers symlinks; the containerd shims' sockets): `up` notes which of
# them it creates, `down` removes those again once they are empty.
# The tables that iptables (nf_tables backend) makes when the kubelet first calls it: `down` deletes those
# that were not there before `up` once they hold no rule.
IPTABLES_NFT_TABLES = ("ip filter", "ip nat", "ip mangle", "ip6 filter", "ip6 nat", "ip6 mangle")
SYSTEM_FOLDERS = ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd")


def state_dir(arg: str | None = None) -> Path:
    return Path(arg or os.environ.get("PYAGENT_CLUSTER_STATE") or DEFAULT_STATE).resolve()


@dataclass
class Facts:
    """What `up` chose at run time (ports, addresses): saved to `cluster.json` before each part starts."""

    host_ip: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)  # values found before `up` changed them
    created: list[str] = field(default_factory=list)  # system folders that did not exist before `up`
    nft_tables: list[str] = field(default_factory=list)  # nftables tables there before `up` ("ip filter", ...)

    @staticmethod
    def load(state: Path) -> Facts:
        path = state / "cluster.json"
        if not path.exists():
            return Facts()
        data = json.loads(path.read_text())
        return Facts(
            host_ip=data["host_ip"],
            ports=dict(data["ports"]),
            sysctls=dict(data["sysctls"]),
            created=list(data.get("created", [])),
            nft_tables=list(data.get("nft_tables", [])),
        )

    def save(self, state: Path) -> None:
        tmp = state / "cluster.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        tmp.replace(state / "cluster.json")


def free_port() -> int:
    """A port nothing listens on now, chosen by the kernel (the part then binds it; a race is reported as
    that part failing to start, with its log)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_ip() -> str:
    """The source address of the default route (pods reach the API server there): a UDP socket "connected"
    to the default gateway, which sends nothing, is given it by the kernel's routing."""
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":  # destination 0.0.0.0: the default route
            gateway = socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((gateway, 9))
                return str(s.getsockname()[0])
    raise RuntimeError("no default route: the API server needs an address that pods can reach")


@dataclass(frozen=True)
class Paths:
    state: Path

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def containerd(self) -> Path:
        return self.state / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.state / "pod-logs"

    @property
    def cni_conf(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def volumes(self) -> Path:
        return self.state / "volumes"

    @property
    def images(self) -> Path:
        return self.state / "images"

    def log(self, part: str) -> Path:
        return self.logs / f"{part}.log"

    def make(self) -> None:
        for d in (
            self.logs,
            self.pki,
            self.pids,
            self.containerd,
            self.kubelet_root,
            self.pod_logs,
            self.cni_conf,
            self.volumes,
            self.images,
        ):
            d.mkdir(parents=True, exist_ok=True)
        self.pki.chmod(0o700)
