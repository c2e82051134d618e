"""`down`: stops every part and removes what they left on the machine, also after an `up` that failed half-way.

What is ours is known by where it lives, not by guessing: processes by their saved pid, the containerd
shims by our containerd's socket in their command line, container processes by the cgroup root the
kubelet was given, mounts and network namespaces by the state folder, the bridge and cgroups by the
project's name, nftables by kube-proxy's own tables, iptables chains by the KUBE-/CNI- prefixes that only
the kubelet, kube-proxy, kube-router and the CNI plugins use, ipsets by kube-router's KUBE-SRC-/KUBE-DST-
prefixes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.e2e.cluster import layout, tools
from tests.e2e.cluster.layout import Facts, Paths
from tests.e2e.cluster.procs import kill, pids_mentioning, running, stop

CGROUPS = Path("/sys/fs/cgroup")
CHAIN_PREFIXES = ("KUBE-", "CNI-")
# kube-router's firewall names its ipsets by these (pkg/controllers/netpol); nothing else of ours makes one.
IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-")
RUNTIME_DIRS = ("etcd", "containerd", "kubelet", "pod-logs", "cni", "volumes")


def _quiet(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)


def _remove_pods(paths: Paths) -> None:
    """Stops and removes every pod sandbox through the CRI: containerd runs the CNI DEL (veth, IPAM), removes
    the network namespace and unmounts the containers' root filesystems."""
    if not running(paths, "containerd") or not paths.containerd_socket.exists():
        return
    crictl = tools.CRI_TOOLS.bin / "crictl"
    if crictl.exists():
        endpoint = f"unix://{paths.containerd_socket}"
        with contextlib.suppress(subprocess.TimeoutExpired):
            _quiet(
                [
                    str(crictl),
                    "--runtime-endpoint",
                    endpoint,
                    "--image-endpoint",
                    endpoint,
                    "--timeout",
                    "60s",
                    "rmp",
                    "--all",
                    "--force",
                ],
                timeout=180,
            )


def _cgroup_dirs() -> list[Path]:
    """Our cgroup folders in every hierarchy, deepest first."""
    out: list[Path] = []
    if not CGROUPS.is_dir():
        return out
    for hierarchy in CGROUPS.iterdir():
        root = hierarchy / layout.CGROUP_ROOT.lstrip("/")
        if root.is_dir():
            out += [Path(p) for p, _, _ in os.walk(root)]
    return sorted(out, key=lambda p: len(p.parts), reverse=True)


def _cgroup_pids() -> list[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs():
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in (d / "cgroup.procs").read_text().split())
    return sorted(pids)


def _our_mounts(paths: Paths) -> list[str]:
    prefix = str(paths.state) + "/"
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(prefix) or target == str(paths.state):
            out.append(target)
    return sorted(set(out), key=len, reverse=True)


def _unmount(paths: Paths) -> list[str]:
    for _ in range(5):  # a mount can hide another under it
        mounts = _our_mounts(paths)
        if not mounts:
            break
        for target in mounts:
            if _quiet(["umount", target]).returncode != 0:
                _quiet(["umount", "-l", target])
    return _our_mounts(paths)


def nft_tables() -> list[str]:
    """Every nftables table, as "family name"."""
    out = _quiet(["nft", "list", "tables"]).stdout
    return [line.split(None, 1)[1] for line in out.splitlines() if line.startswith("table ")]


def _nft_tables() -> list[str]:
    return [t for t in nft_tables() if t.split()[-1] == "kube-proxy"]


def _nft_table_has_rules(table: str) -> bool:
    text = _quiet(["nft", "list", "table", *table.split()]).stdout
    structure = ("table ", "chain ", "type ", "policy ", "}", "{")
    return any(line.strip() and not line.strip().startswith(structure) for line in text.splitlines())


def _chains(binary: str) -> dict[str, list[str]]:
    """Our chains per table, for iptables or ip6tables."""
    found: dict[str, list[str]] = {}
    for table in ("filter", "nat", "mangle"):
        rules = _quiet([binary, "-w", "-t", table, "-S"]).stdout.splitlines()
        chains = [r.split()[1] for r in rules if r.startswith("-N ") and r.split()[1].startswith(CHAIN_PREFIXES)]
        if chains:
            found[table] = chains
    return found


def _remove_chains(binary: str) -> None:
    if not shutil.which(binary):
        return
    for table, chains in _chains(binary).items():
        rules = _quiet([binary, "-w", "-t", table, "-S"]).stdout.splitlines()
        for rule in rules:  # rules of built-in chains that jump into ours
            parts = shlex.split(rule)  # kube-router's rules carry quoted comments with spaces
            if parts[0] == "-A" and not parts[1].startswith(CHAIN_PREFIXES) and re.search(r"-j (KUBE-|CNI-)", rule):
                _quiet([binary, "-w", "-t", table, "-D", *parts[1:]])
        for chain in chains:
            _quiet([binary, "-w", "-t", table, "-F", chain])
        for chain in chains:
            _quiet([binary, "-w", "-t", table, "-X", chain])


def _ipsets() -> list[str]:
    if not shutil.which("ipset"):
        return []
    names = _quiet(["ipset", "list", "-n"]).stdout.split()
    return sorted(n for n in names if n.startswith(IPSET_PREFIXES))


def _remove_ipsets() -> None:
    # a set still named by a rule cannot be destroyed: the chains go first
    for name in _ipsets():
        _quiet(["ipset", "destroy", name])


def _our_netns() -> list[str]:
    """Network namespaces in the system folder that hold an address of our pod subnet (if any landed there)."""
    out = []
    folder = Path("/var/run/netns")
    if folder.is_dir():
        prefix = layout.POD_CIDR.rsplit(".", 1)[0] + "."
        for ns in folder.iterdir():
            if ns.name.startswith("cni-") and f"inet {prefix}" in _quiet(["ip", "-n", ns.name, "-4", "addr"]).stdout:
                out.append(ns.name)
    return out


def leftovers(paths: Paths) -> list[str]:
    """What of ours is still on the machine (empty after a clean `down`)."""
    out: list[str] = []
    for pid_file in sorted(paths.pids.glob("*.pid")) if paths.pids.is_dir() else []:
        if running(paths, pid_file.stem):
            out.append(f"process {pid_file.stem}")
    shims = pids_mentioning(str(paths.containerd_socket))
    out += [f"process {pid} (mentions our containerd socket)" for pid in shims]
    out += [f"process {pid} (in cgroup {layout.CGROUP_ROOT})" for pid in _cgroup_pids()]
    out += [f"mount {m}" for m in _our_mounts(paths)]
    out += [f"netns {n}" for n in _our_netns()]
    if Path(f"/sys/class/net/{layout.BRIDGE}").exists():
        out.append(f"link {layout.BRIDGE}")
    out += [f"nftables table {t}" for t in _nft_tables()]
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary):
            out += [f"{binary} -t {t} chain {c}" for t, cs in _chains(binary).items() for c in cs]
    out += [f"ipset {s}" for s in _ipsets()]
    out += [f"cgroup {d}" for d in _cgroup_dirs()]
    return out


def down(paths: Paths) -> list[str]:
    """Stops everything; returns what could not be removed (empty when the machine is clean)."""
    if not paths.state.is_dir():
        return []
    paths.pids.mkdir(parents=True, exist_ok=True)
    stop(paths, "kubelet")
    _remove_pods(paths)
    stop(paths, "kube-proxy")
    stop(paths, "kube-router")  # before its chains and sets go: it would write them again
    stop(paths, "containerd")
    # shims (and their containers) whose containerd died before it could stop them
    kill(pids_mentioning(str(paths.containerd_socket)), timeout=10)
    kill(_cgroup_pids(), timeout=10)
    for part in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        stop(paths, part)
    _unmount(paths)
    for ns in _our_netns():
        _quiet(["ip", "netns", "delete", ns])
    if Path(f"/sys/class/net/{layout.BRIDGE}").exists():
        _quiet(["ip", "link", "delete", layout.BRIDGE])
    for table in _nft_tables():
        _quiet(["nft", "delete", "table", *table.split()])
    _remove_chains("iptables")
    _remove_chains("ip6tables")
    _remove_ipsets()
    facts = Facts.load(paths.state)
    if facts.sysctls:  # an `up` recorded which tables were there before it, and no clean `down` came since
        for table in layout.IPTABLES_NFT_TABLES:
            if table in nft_tables() and table not in facts.nft_tables and not _nft_table_has_rules(table):
                _quiet(["nft", "delete", "table", *table.split()])
    for d in _cgroup_dirs():
        with contextlib.suppress(OSError):
            d.rmdir()
    containers_logs = Path("/var/log/containers")
    if containers_logs.is_dir():
        for link in containers_logs.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(paths.pod_logs)):
                link.unlink()
    # the kubelet's device manager listens there whatever its --root-dir; no kubelet runs now
    device_socket = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
    if device_socket.is_socket():
        device_socket.unlink()
    for folder in facts.created:
        for sub, _, _ in os.walk(folder, topdown=False):
            with contextlib.suppress(OSError):
                Path(sub).rmdir()  # only empty folders: anything else in them is not ours to remove
    for name, value in facts.sysctls.items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name).write_text(value)
    left = leftovers(paths)
    if not any(x.startswith("mount ") for x in left):
        for name in RUNTIME_DIRS:
            shutil.rmtree(paths.state / name, ignore_errors=True)
    if not left:
        facts.sysctls, facts.created, facts.nft_tables = {}, [], []
        if (paths.state / "cluster.json").exists():
            facts.save(paths.state)
    return left


PARTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
    "kube-router",
)


def is_up(paths: Paths) -> bool:
    """Every part of the cluster in `paths` runs."""
    return paths.pids.is_dir() and all(running(paths, p) for p in PARTS)


def status(paths: Paths) -> dict[str, object]:
    facts = Facts.load(paths.state)
    return {
        "state": str(paths.state),
        "running": {p: running(paths, p) for p in PARTS} if paths.pids.is_dir() else {},
        "ports": facts.ports,
        "host_ip": facts.host_ip,
        "leftovers": leftovers(paths) if paths.state.is_dir() else [],
    }


def status_text(paths: Paths) -> str:
    return json.dumps(status(paths), indent=2)
