"""The cluster's images, built here as OCI image layouts with umoci, exported by skopeo as OCI archives,
and imported into the cluster's containerd (namespace `k8s.io`, where the kubelet's CRI looks) with ctr.

Nothing is pulled: the pause image is Kubernetes' own pause.c compiled statically, CoreDNS is the binary
built from the Go module proxy, and the test image is Debian's busybox-static.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.cluster import tools, versions
from tests.e2e.cluster.layout import Paths
from tests.e2e.cluster.procs import PartFailed

CACHE = tools.TOOLS / "cluster-images"


@dataclass(frozen=True)
class Image:
    reference: str  # repository:tag, as pods and containerd's sandbox_image name it
    files: tuple[tuple[str, Path], ...]  # (path in the image, file on this machine)
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    user: str = "65534:65534"

    @property
    def repository(self) -> str:
        return self.reference.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.reference.rsplit(":", 1)[1]

    @property
    def key(self) -> str:
        return self.reference.replace("/", "_").replace(":", "_")


def images() -> list[Image]:
    return [
        Image(versions.PAUSE_IMAGE, (("/pause", tools.PAUSE_HOME / "bin" / "pause"),), ("/pause",), user="65535:65535"),
        Image(
            versions.COREDNS_IMAGE, (("/coredns", tools.COREDNS.bin / "coredns"),), ("/coredns",), user="65532:65532"
        ),
        Image(
            versions.LOCAL_PATH_IMAGE,
            (("/bin/local-path-provisioner", tools.LOCAL_PATH.bin / "local-path-provisioner"),),
            (),
        ),
        Image(
            versions.TEST_IMAGE,
            (("/bin/busybox", Path("/bin/busybox")), ("/bin/kubectl", tools.KUBERNETES.bin / "kubectl")),
            (),
            cmd=("/bin/sh",),
        ),
    ]


def _run(argv: list[str], log: Path) -> str:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    with log.open("a") as out:
        out.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise PartFailed(f"images: `{' '.join(argv[:3])}` failed (exit {proc.returncode}); log: {log}")
    return proc.stdout


def _populate(rootfs: Path, image: Image) -> None:
    for inside, source in image.files:
        target = rootfs / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        target.chmod(0o755)
    if image.reference == versions.TEST_IMAGE:
        applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
        for name in applets:
            link = rootfs / "bin" / name
            if name != "busybox" and not link.exists() and not link.is_symlink():
                link.symlink_to("busybox")
        (rootfs / "etc").mkdir(exist_ok=True)
        passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n"
        (rootfs / "etc" / "passwd").write_text(passwd)
        (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        (rootfs / "tmp").mkdir(exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)


def archive(image: Image, log: Path) -> Path:
    """The image as an OCI archive (cached; rebuilt when missing)."""
    out = CACHE / f"{image.key}.oci.tar"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f"{image.key}.work"
    shutil.rmtree(work, ignore_errors=True)
    layout, bundle = work / "layout", work / "bundle"
    ref = f"{layout}:{image.tag}"
    _run(["umoci", "init", "--layout", str(layout)], log)
    _run(["umoci", "new", "--image", ref], log)
    _run(["umoci", "unpack", "--image", ref, str(bundle)], log)
    _populate(bundle / "rootfs", image)
    _run(["umoci", "repack", "--image", ref, str(bundle)], log)
    config = [
        "umoci",
        "config",
        "--image",
        ref,
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--config.user",
        image.user,
        "--config.workingdir",
        "/",
        "--config.env",
        "PATH=/bin:/usr/bin",
    ]
    config += [a for e in image.entrypoint for a in ("--config.entrypoint", e)]
    config += [a for c in image.cmd for a in ("--config.cmd", c)]
    _run(config, log)
    _run(["umoci", "gc", "--layout", str(layout)], log)
    partial = out.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    _run(["skopeo", "copy", "--quiet", f"oci:{ref}", f"oci-archive:{partial}:{image.tag}"], log)
    partial.rename(out)
    shutil.rmtree(work)
    return out


def ctr(paths: Paths) -> list[str]:
    return ["ctr", "--address", str(paths.containerd_socket), "--namespace", "k8s.io"]


def import_archive(paths: Paths, archive_path: Path, base_name: str | None, log: Path) -> str:
    """`ctr images import` of an OCI or docker archive; an OCI archive's tag-only reference is put under `base_name`."""
    argv = [*ctr(paths), "images", "import"]
    if base_name:
        argv += ["--base-name", base_name]
    out = _run([*argv, str(archive_path)], log)
    return out.strip()


def load_all(paths: Paths) -> None:
    log = paths.log("images")
    for image in images():
        import_archive(paths, archive(image, log), image.repository, log)
    listed = _run([*ctr(paths), "images", "list", "--quiet"], log).split()
    missing = [i.reference for i in images() if i.reference not in listed]
    if missing:
        raise PartFailed(f"images: not in containerd after import: {', '.join(missing)}; log: {log}")
