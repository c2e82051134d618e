"""Builds the cluster's binaries from the Go module proxy and caches them under `.tools/<name>-<version>/bin/`.

A tool whose `bin/` folder exists is not built again: the folder is renamed into place only after
every binary of it was built, so a build that was interrupted leaves nothing that looks finished.

`k8s.io/kubernetes` cannot be `go install`ed: its go.mod replaces 31 `k8s.io/*` modules by folders of
its own repository (`./staging/...`). A wrapper module requires it and replaces each of those by the
published `k8s.io/<x> v0.<minor>.<patch>` instead, which the proxy serves. etcd's server module has
the same kind of local replaces, so every tool is built through a small wrapper module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.cluster import versions

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / ".tools"


class ToolError(Exception):
    """A tool could not be built or found; the message is one line for the user."""


@dataclass(frozen=True)
class GoTool:
    name: str
    version: str
    module: str  # the module the wrapper requires
    packages: tuple[str, ...]  # main packages to build; each binary is named by its last path element
    ldflags: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()  # names of the binaries when they differ from the packages' last element

    @property
    def home(self) -> Path:
        return TOOLS / f"{self.name}-{self.version}"

    @property
    def bin(self) -> Path:
        return self.home / "bin"


def _k8s_ldflags(version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags: list[str] = []
    # component-base is what the servers and kubelet report; client-go's is what kubectl's client reports.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return tuple(flags)


KUBERNETES = GoTool(
    name="k8s",
    version=versions.KUBERNETES,
    module="k8s.io/kubernetes",
    packages=tuple(
        f"k8s.io/kubernetes/cmd/{c}"
        for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
    ),
    ldflags=_k8s_ldflags(versions.KUBERNETES),
)
ETCD = GoTool(
    name="etcd",
    version=versions.ETCD,
    module="go.etcd.io/etcd/server/v3",
    packages=("go.etcd.io/etcd/server/v3",),
    binaries=("etcd",),
    ldflags=(),
)
COREDNS = GoTool(
    name="coredns",
    version=versions.COREDNS,
    module="github.com/coredns/coredns",
    packages=("github.com/coredns/coredns",),
    ldflags=(f"-X github.com/coredns/coredns/coremain.GitCommit={versions.COREDNS}",),
)
CRI_TOOLS = GoTool(
    name="cri-tools",
    version=versions.CRI_TOOLS,
    module="sigs.k8s.io/cri-tools",
    packages=("sigs.k8s.io/cri-tools/cmd/crictl",),
    ldflags=(f"-X sigs.k8s.io/cri-tools/pkg/version.Version={versions.CRI_TOOLS}",),
)
LOCAL_PATH = GoTool(
    name="local-path-provisioner",
    version=versions.LOCAL_PATH_PROVISIONER,
    module="github.com/rancher/local-path-provisioner",
    packages=("github.com/rancher/local-path-provisioner",),
    ldflags=(f"-X main.VERSION={versions.LOCAL_PATH_PROVISIONER}",),
)
KUBE_ROUTER = GoTool(
    name="kube-router",
    version=versions.KUBE_ROUTER,
    module="github.com/cloudnativelabs/kube-router/v2",
    packages=("github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",),
    ldflags=(f"-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version={versions.KUBE_ROUTER}",),
)
GO_TOOLS = (KUBERNETES, ETCD, COREDNS, CRI_TOOLS, LOCAL_PATH, KUBE_ROUTER)


def _run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> str:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=out, text=True, check=False)
        out.write(proc.stdout)
    if proc.returncode != 0:
        raise ToolError(f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode}); log: {log}")
    return proc.stdout


def _module_dir(module: str, version: str, cwd: Path, log: Path) -> Path:
    info = json.loads(_run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd, log))
    return Path(info["Dir"])


def _replaces(tool: GoTool, src: Path, log: Path) -> list[str]:
    """The replace directives the wrapper needs: the module's own local ones, pointed at published versions."""
    gomod = (_module_dir(tool.module, tool.version, src, log) / "go.mod").read_text()
    out: list[str] = []
    for old, new in re.findall(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+(\S+.*?)\s*$", gomod, flags=re.M):
        if "FORBIDDEN_DEPENDENCY" in new:
            continue  # etcd's guard against importing its own root module: nothing to replace
        if not new.startswith("."):
            out.append(f"{old} => {new}")  # a replace to another published module: keep it as is
        elif tool is KUBERNETES:
            out.append(f"{old} => {old} v0.{tool.version.lstrip('v').split('.', 1)[1]}")
        elif old.startswith("go.etcd.io/etcd/"):
            out.append(f"{old} => {old} {tool.version}")
        else:
            raise ToolError(f"{tool.module}@{tool.version} replaces {old} by a local folder {new}; no rule for it")
    return out


def begin_build(home: Path, name: str, version: str, progress: bool) -> tuple[Path, Path]:
    """The wrapper module's folder (with a bare go.mod) and an empty build log, under `home`."""
    src = home / "src"
    src.mkdir(parents=True, exist_ok=True)
    log = home / "build.log"
    log.write_text("")
    if progress:
        print(f"building {name} {version} from the Go module proxy (log: {log})", file=sys.stderr)
    (src / "go.mod").write_text(wrapper_header(name))
    return src, log


def wrapper_header(name: str) -> str:
    return f"module pyagent.dev/e2e/{name}\n\ngo 1.24\n"


def write_tools_go(src: Path, packages: tuple[str, ...]) -> None:
    """The file that makes the wrapper module import (and so require) the packages to build."""
    imports = "\n".join(f'\t_ "{p}"' for p in packages)
    (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")


def empty_partial(home: Path) -> Path:
    """A fresh folder for binaries, renamed to `bin` only once every one of them is built."""
    out = home / "bin.partial"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    return out


def build(tool: GoTool, progress: bool = True) -> Path:
    """Builds `tool` into its cache folder unless it is there; returns the folder of its binaries."""
    if tool.bin.is_dir():
        return tool.bin
    src, log = begin_build(tool.home, tool.name, tool.version, progress)
    start = time.monotonic()
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    replaces = _replaces(tool, src, log)
    write_tools_go(src, tool.packages)
    gomod = f"{wrapper_header(tool.name)}\nrequire {tool.module} {tool.version}\n"
    if replaces:
        gomod += "\nreplace (\n" + "".join(f"\t{r}\n" for r in replaces) + ")\n"
    (src / "go.mod").write_text(gomod)
    _run(["go", "mod", "tidy", "-e"], src, log, env)
    out = empty_partial(tool.home)
    ldflags = " ".join(("-s", "-w", *tool.ldflags))
    for i, pkg in enumerate(tool.packages):
        name = tool.binaries[i] if tool.binaries else pkg.rsplit("/", 1)[1]
        t0 = time.monotonic()
        _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(out / name), pkg], src, log, env)
        with log.open("a") as f:
            f.write(f"# built {name} in {time.monotonic() - t0:.0f} s\n")
        if progress:
            print(f"  {name}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    out.rename(tool.bin)
    (tool.home / "built.json").write_text(json.dumps({"seconds": round(time.monotonic() - start)}) + "\n")
    return tool.bin


PAUSE_HOME = TOOLS / f"pause-{versions.PAUSE}"


def build_pause() -> Path:
    """Kubernetes' own pause (build/pause/linux/pause.c from the k8s.io/kubernetes module), static, with gcc."""
    binary = PAUSE_HOME / "bin" / "pause"
    if binary.exists():
        return binary
    PAUSE_HOME.mkdir(parents=True, exist_ok=True)
    log = PAUSE_HOME / "build.log"
    log.write_text("")
    source = _module_dir("k8s.io/kubernetes", versions.KUBERNETES, PAUSE_HOME, log) / "build/pause/linux/pause.c"
    tmp = PAUSE_HOME / "pause.partial"
    # the flags of build/pause/Makefile (CFLAGS = -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV))
    _run(
        ["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{versions.PAUSE}-0", "-o", str(tmp), str(source)],
        PAUSE_HOME,
        log,
    )
    _run(["strip", str(tmp)], PAUSE_HOME, log)
    binary.parent.mkdir(exist_ok=True)
    tmp.rename(binary)
    return binary


DEBIAN = {
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "iptables": "/usr/sbin/iptables",
    "nftables": "/usr/sbin/nft",
    "conntrack": "/usr/sbin/conntrack",
    "umoci": "/usr/bin/umoci",
    "skopeo": "/usr/bin/skopeo",
    "busybox-static": "/bin/busybox",
    "ipset": "/usr/sbin/ipset",
}


def check_debian() -> None:
    missing = [pkg for pkg, path in DEBIAN.items() if not Path(path).exists()]
    if missing:
        raise ToolError(
            "missing Debian packages: " + " ".join(missing) + "; install them with `make cluster-tools` "
            f"(apt-get install -y {' '.join(versions.DEBIAN_PACKAGES)})"
        )


def install_debian() -> None:
    missing = [pkg for pkg, path in DEBIAN.items() if not Path(path).exists()]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *versions.DEBIAN_PACKAGES], check=True, env=env)


def build_all() -> None:
    install_debian()
    for tool in GO_TOOLS:
        build(tool)
    build_pause()
