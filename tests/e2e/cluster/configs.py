"""The configuration files of each part, built as data and written as YAML/TOML/JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.cluster import layout, versions
from tests.e2e.cluster.layout import Facts, Paths
from tests.e2e.cluster.pki import Pair


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=True))
    return path


def kubeconfig(path: Path, paths: Paths, facts: Facts, user: dict[str, str]) -> Path:
    """A kubeconfig for the API server on loopback; `user` holds a token or a client certificate and key."""
    data = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": layout.NODE_NAME,
                "cluster": {
                    "server": f"https://127.0.0.1:{facts.ports['apiserver']}",
                    "certificate-authority": str(paths.pki / "ca.crt"),
                },
            }
        ],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": layout.NODE_NAME, "context": {"cluster": layout.NODE_NAME, "user": "user"}}],
        "current-context": layout.NODE_NAME,
    }
    write_yaml(path, data)
    path.chmod(0o600)
    return path


def cert_user(pair: Pair) -> dict[str, str]:
    return {"client-certificate": str(pair.cert), "client-key": str(pair.key)}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)


def toml(data: dict[str, Any]) -> str:
    """TOML of nested tables of scalars (all that containerd's config needs; Python has no TOML writer)."""
    lines: list[str] = []

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in sorted(scalars.items()))
        for k, v in sorted(d.items()):
            if isinstance(v, dict):
                key = k if all(c.isalnum() or c in "_-" for c in k) else json.dumps(k)
                table(f"{prefix}.{key}" if prefix else key, v)

    table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"


def containerd(paths: Paths) -> Path:
    """containerd 1.6 (config version 2): own root, state, socket, runc root, netns folder and CNI folders."""
    c = paths.containerd
    cri = {
        "sandbox_image": versions.PAUSE_IMAGE,
        "stream_server_address": "127.0.0.1",
        "stream_server_port": "0",  # a free port, chosen by the kernel (kubectl exec/logs go through it)
        "netns_mounts_under_state_dir": True,  # pod network namespaces under our state folder, not /var/run/netns
        "enable_selinux": False,
        # This machine's root lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj below 0 and
        # runc fails to start the kubelet's sandboxes (-998) with "failed to update /proc/self/oom_score_adj:
        # Permission denied". Clamp to containerd's own score (0), as containerd does for rootless setups.
        "restrict_oom_score_adj": True,
        "max_container_log_line_size": 16384,
        "cni": {"bin_dir": "/usr/lib/cni", "conf_dir": str(paths.cni_conf), "max_conf_num": 1},
        "containerd": {
            "snapshotter": "overlayfs",
            "default_runtime_name": "runc",
            "runtimes": {
                "runc": {
                    "runtime_type": "io.containerd.runc.v2",
                    "options": {"BinaryName": "/usr/sbin/runc", "Root": str(c / "runc"), "SystemdCgroup": False},
                }
            },
        },
        "registry": {"config_path": ""},
    }
    data = {
        "version": 2,
        "root": str(c / "root"),
        "state": str(c / "state"),
        "disabled_plugins": [
            "io.containerd.snapshotter.v1.aufs",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.internal.v1.tracing",
            "io.containerd.tracing.processor.v1.otlp",
        ],
        "grpc": {"address": str(paths.containerd_socket)},
        "ttrpc": {"address": str(c / "containerd.sock.ttrpc")},
        "debug": {"address": str(c / "debug.sock")},
        "metrics": {"address": ""},
        "plugins": {
            "io.containerd.grpc.v1.cri": cri,
            "io.containerd.internal.v1.opt": {"path": str(c / "opt")},
        },
    }
    path = c / "config.toml"
    path.write_text(toml(data))
    return path


def cni(paths: Paths) -> Path:
    """Debian's CNI plugins: a bridge with host-local addresses from the pod subnet, loopback, portmap."""
    data = {
        "cniVersion": "1.0.0",
        "name": layout.CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # pods reach the host and each other without NAT; nothing leaves the node
                "hairpinMode": True,  # a pod reaches itself through its own Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    for old in paths.cni_conf.glob("*"):
        old.unlink()
    path = paths.cni_conf / "10-pyagent-e2e.conflist"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def kubelet(paths: Paths, facts: Facts, serving: Pair) -> Path:
    data = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # The machines run cgroup v1 (hybrid); kubelet 1.35+ refuses it, 1.34 only when told to.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",  # as containerd's runc (SystemdCgroup = false); there is no systemd here
        "cgroupRoot": layout.CGROUP_ROOT,
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "address": "0.0.0.0",
        "port": facts.ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": facts.ports["kubelet-healthz"],
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(paths.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [layout.DNS_SERVICE_IP],
        "clusterDomain": layout.CLUSTER_DOMAIN,
        "resolvConf": str(paths.state / "resolv.conf"),
        "podLogsDir": str(paths.pod_logs),
        "failSwapOn": False,
        # The disk is shared with other work: never evict our pods or collect our imported images
        # (they cannot be pulled again), whatever the others fill it with.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "protectKernelDefaults": False,
        "maxPods": 110,
        "podPidsLimit": 4096,
    }
    return write_yaml(paths.kubelet_root / "config.yaml", data)


def kube_proxy(paths: Paths, facts: Facts, kubeconfig_path: Path) -> Path:
    data = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        # nftables: everything kube-proxy writes is in its own tables (`ip kube-proxy`, `ip6 kube-proxy`)
        "mode": "nftables",
        "clusterCIDR": layout.CLUSTER_CIDR,
        "detectLocalMode": "ClusterCIDR",
        "hostnameOverride": layout.NODE_NAME,
        "bindAddress": "0.0.0.0",
        "healthzBindAddress": f"127.0.0.1:{facts.ports['kube-proxy-healthz']}",
        "metricsBindAddress": f"127.0.0.1:{facts.ports['kube-proxy-metrics']}",
        "nodePortAddresses": ["primary"],
        # leave the machine's conntrack settings alone (the machine is shared)
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return write_yaml(paths.state / "kube-proxy.yaml", data)
