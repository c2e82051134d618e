"""Every version the test cluster is made of, pinned in one place.

Built from the Go module proxy (cached under `.tools/<name>-<version>/`): Kubernetes, etcd,
CoreDNS and crictl. Taken from Debian bookworm's packages (apt): containerd, runc, the CNI
plugins, iptables/nftables, umoci and skopeo (checked at bring-up, see `tools.DEBIAN`).
"""

from __future__ import annotations

KUBERNETES = "v1.34.4"
# kubeadm v1.34.4's own choices (cmd/kubeadm/app/constants/constants.go): etcd 3.6.5, CoreDNS v1.12.1,
# pause 3.10.1. k8s.io/kubernetes v1.34.4's go.mod itself requires the etcd v3.6.4 client.
ETCD = "v3.6.5"
COREDNS = "v1.12.1"
PAUSE = "3.10.1"
CRI_TOOLS = "v1.34.0"
# Dynamic provisioning of node-local volumes; v0.0.30 is the newest version the Go module proxy serves
# (v0.0.31 and v0.0.32: "403 Forbidden, This module version is not available").
LOCAL_PATH_PROVISIONER = "v0.0.30"
# The NetworkPolicy controller: kube-router's firewall alone (`--run-firewall`, no router, no service proxy;
# kube-proxy stays the service proxy). v2.1.0 is the only version the Go module proxy lists. The advisory
# reported for it (GHSA-phqm-jgc3-qf8g) is in the service proxy, which is not run here.
KUBE_ROUTER = "v2.1.0"

# The image names the cluster's containerd and kubelet expect; all are built here, never pulled.
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE}"
COREDNS_IMAGE = f"localhost/pyagent-e2e/coredns:{COREDNS}"
# Debian's busybox-static plus the kubectl built here (a Go client with Go's own resolver and TLS: busybox's
# static-glibc wget crashes on any name lookup and on TLS, its nc and nslookup do not).
LOCAL_PATH_IMAGE = f"localhost/pyagent-e2e/local-path-provisioner:{LOCAL_PATH_PROVISIONER}"
TEST_IMAGE = f"localhost/pyagent-e2e/toolbox:bookworm-{KUBERNETES}"

# Debian bookworm packages (versions as installed on 2026-12-04; `tools.check_debian` reports what is there).
DEBIAN_PACKAGES = (
    "containerd",  # 1.6.20
    "runc",  # 1.1.5
    "containernetworking-plugins",  # 1.1.1
    "iptables",  # 1.8.9 (nf_tables backend)
    "nftables",
    "conntrack",
    "umoci",
    "skopeo",
    "busybox-static",
    "ipset",  # 7.17, which kube-router's firewall calls
)
