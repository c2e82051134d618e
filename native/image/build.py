#!/usr/bin/env python3
"""Build the node image of `pyagent-node` without a Docker engine: a reproducible OCI image.

    python3 native/image/build.py           # build, write the OCI layout and archive, update the lock
    python3 native/image/build.py --check   # build, and fail if the committed lock does not match

What it does (docs/node-image.md says why each step is as it is):

1. `cargo build --release --locked -p pyagent-node --target x86_64-unknown-linux-gnu` into
   native/target/image/, with RUSTFLAGS that replace native/.cargo/config.toml's
   `target-cpu=native` by the x86-64 baseline (a pod may land on any CPU), map the checkout and
   $CARGO_HOME to fixed names (`--remap-path-prefix`) and leave out the linker's build id, so
   that the binary is the same bytes whatever folder the checkout is in.
2. A root file system holding only the binary, the shared libraries the ELF asks for (DT_NEEDED
   and its interpreter, followed transitively, copied from this machine's Debian packages),
   /etc/passwd, /etc/group and /etc/nsswitch.conf for user 10001, and the folders the pod mounts.
3. umoci (Debian's) makes the OCI image from it: `init`, `new`, `unpack`, the files, `repack`,
   `config`, `gc`. Every timestamp is SOURCE_DATE_EPOCH, a constant (below), owners are numeric and
   fixed; umoci writes the layer's entries in name order, with neither user names nor PAX times.
4. GNU tar packs the layout into an OCI archive with sorted names, fixed owners and times: the
   archive's bytes are reproducible too, and `ctr images import` and `skopeo` read it.
5. native/image/pyagent-node.lock.json records the digest and what it was built from; the compiler
   pins `image: {build: native}` to that digest (pyagent_compile/plan/workloads.py).

Needs root (umoci unpack and the chown of /var/lib/pyagent) and Debian's umoci, tar, binutils.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parent
NATIVE = IMAGE_DIR.parent
REPO = NATIVE.parent
LOCK = IMAGE_DIR / "pyagent-node.lock.json"
TARGET_DIR = NATIVE / "target" / "image"
TRIPLE = "x86_64-unknown-linux-gnu"
LAYOUT = TARGET_DIR / "oci"
ARCHIVE = TARGET_DIR / "pyagent-node.oci.tar"

REPOSITORY = "ghcr.io/pyagent/pyagent-node"
# A constant, not the commit's time: the image is then a function of its contents only, and the
# lock committed with a change stays true after the commit that carries it (a commit time would
# change the digest on every commit, the lock's own included).
SOURCE_DATE_EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"
UID = GID = 10001
USER = "pyagent"
BINARY = "/usr/local/bin/pyagent-node"
DATA_DIR = "/var/lib/pyagent"
# The same ports as the Dockerfile's EXPOSE (the defaults of `mesh.ports`): raft, grpc, metrics.
PORTS = (7100, 7443, 9100)
# Where the remapped paths point in panic messages and debug info: fixed names, not this machine's.
REMAP_REPO = "/build/pyagent"
REMAP_CARGO_HOME = "/cargo"
# The linker's build id is a hash of the output: harmless for reproducibility, but nothing reads it
# here and the brief of the image is "no ids"; leaving it out keeps the ELF free of one more field.
RUSTFLAGS = ("-C", "target-cpu=x86-64", "-C", "link-arg=-Wl,--build-id=none")

PASSWD = f"root:x:0:0:root:/root:/sbin/nologin\n{USER}:x:{UID}:{GID}:pyagent node:{DATA_DIR}:/sbin/nologin\n"
GROUP = f"root:x:0:\n{USER}:x:{GID}:\n"
# glibc's own default for `hosts` is "dns [!UNAVAIL=return] files"; the kubelet mounts /etc/hosts
# with the pod's own name in it, so files come first, as in Debian and distroless.
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


class BuildError(Exception):
    """A step failed; the message says which and what to do."""


def log(msg: str) -> None:
    print(f"image: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: object) -> str:
    """Run a tool, returning its stdout; its stderr is shown when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr.strip()}")
    return str(proc.stdout)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def cargo_home() -> Path:
    return Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo").resolve()


def version() -> str:
    manifest = tomllib.loads((NATIVE / "Cargo.toml").read_text(encoding="utf-8"))
    return str(manifest["workspace"]["package"]["version"])


# -- 1. the binary -----------------------------------------------------------------------------
def cargo_build() -> tuple[Path, float]:
    flags = [
        *RUSTFLAGS,
        f"--remap-path-prefix={REPO}={REMAP_REPO}",
        f"--remap-path-prefix={cargo_home()}={REMAP_CARGO_HOME}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS")}
    # RUSTFLAGS takes precedence over build.rustflags of native/.cargo/config.toml (target-cpu=native);
    # with --target, it applies to the target's code only, not to build scripts and proc macros.
    env.update(
        RUSTFLAGS=" ".join(flags),
        CARGO_TARGET_DIR=str(TARGET_DIR),
        CARGO_INCREMENTAL="0",
        SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH),
        CARGO_TERM_COLOR="never",
    )
    cmd = ["cargo", "build", "--release", "--locked", "-p", "pyagent-node", "--target", TRIPLE]
    log(f"RUSTFLAGS={env['RUSTFLAGS']!r} {' '.join(cmd)}")
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=NATIVE, env=env)
    if proc.returncode != 0:
        raise BuildError(f"cargo build exited {proc.returncode}")
    return TARGET_DIR / TRIPLE / "release" / "pyagent-node", time.monotonic() - start


# -- 2. what the binary links against ------------------------------------------------------------
def elf_needs(path: Path) -> tuple[list[str], str | None]:
    """DT_NEEDED names and the program interpreter of an ELF file (binutils' readelf)."""
    dynamic = run(["readelf", "--wide", "--dynamic", str(path)])
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)
    headers = run(["readelf", "--wide", "--program-headers", str(path)])
    interp = re.search(r"\[Requesting program interpreter: ([^\]]+)\]", headers)
    return needed, interp.group(1) if interp else None


def ldd_paths(path: Path) -> dict[str, str]:
    """name -> absolute path, as this machine's dynamic loader resolves them."""
    found = {}
    for line in run(["ldd", str(path)]).splitlines():
        m = re.match(r"\s*(\S+) => (/\S+) \(0x", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def debian_package(path: str) -> tuple[str, str]:
    """(package, version) that ships a file, from dpkg's database."""
    owner = run(["dpkg-query", "--search", path]).splitlines()[0].split(":")[0]
    return owner, run(["dpkg-query", "--show", "--showformat=${Version}", owner])


def libraries(binary: Path) -> list[dict[str, str]]:
    """Every shared object the binary needs, transitively, with the Debian package it came from.
    Each is stored in the image at the path the loader found it on this machine."""
    resolved = ldd_paths(binary)
    wanted: dict[str, str] = {}  # path in the image -> path on this machine
    symlinks: dict[str, str] = {}
    queue = [binary]
    while queue:
        needed, interp = elf_needs(queue.pop())
        paths = [resolved[n] if "/" not in n else n for n in needed if n in resolved or "/" in n]
        missing = [n for n in needed if n not in resolved and "/" not in n and not n.startswith("ld-linux")]
        if missing:
            raise BuildError(f"ldd does not resolve {missing}")
        if interp:
            paths.append(interp)
        for p in paths:
            if os.path.islink(p):
                # /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2: kept as
                # a link, since the interpreter's path is written into the binary.
                dest = os.readlink(p)
                symlinks[p] = dest
                p = dest if dest.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(p), dest))
            # The path as the loader names it (/lib/...), though /lib is itself a link to usr/lib on
            # a merged-/usr Debian: the image has no such link, only the folders the files are in.
            if p not in wanted:
                wanted[p] = os.path.realpath(p)
                queue.append(Path(wanted[p]))
    out = []
    for image_path, host in sorted(wanted.items()):
        package, pkg_version = debian_package(image_path)
        out.append({"path": image_path, "package": package, "version": pkg_version, "sha256": sha256_file(Path(host))})
    for link, dest in sorted(symlinks.items()):
        package, pkg_version = debian_package(link)
        out.append({"path": link, "symlink": dest, "package": package, "version": pkg_version})
    return sorted(out, key=lambda e: e["path"])


def stage_rootfs(rootfs: Path, binary: Path, libs: list[dict[str, str]]) -> None:
    def put(path: str, mode: int, data: bytes | None = None, source: Path | None = None) -> None:
        dest = rootfs / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            shutil.copyfile(source, dest)  # contents only: no xattrs, no host times or owners
        else:
            dest.write_bytes(data or b"")
        dest.chmod(mode)

    put(BINARY, 0o755, source=binary)
    for lib in libs:
        if "symlink" in lib:
            link = rootfs / lib["path"].lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(lib["symlink"])
        else:
            put(lib["path"], 0o755, source=Path(lib["path"]))
    put("/etc/passwd", 0o644, PASSWD.encode())
    put("/etc/group", 0o644, GROUP.encode())
    put("/etc/nsswitch.conf", 0o644, NSSWITCH.encode())
    # The config (a read-only ConfigMap) is mounted under /etc/pyagent: root's, not the daemon's.
    # The data volume at /var/lib/pyagent is the daemon's own; /tmp is a memory volume in the pod.
    for path, mode, owner in (("/etc/pyagent", 0o755, 0), (DATA_DIR, 0o700, UID), ("/tmp", 0o1777, 0)):
        d = rootfs / path.lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(mode)
        os.chown(d, owner, owner)
    # Every directory 0755 root but those above; every time the epoch. umoci records what it finds.
    for d in [rootfs, *(p for p in rootfs.rglob("*") if p.is_dir() and not p.is_symlink())]:
        rel = "/" + d.relative_to(rootfs).as_posix() if d != rootfs else "/"
        if rel not in ("/etc/pyagent", DATA_DIR, "/tmp"):
            d.chmod(0o755)
            os.chown(d, 0, 0)
    for p in [rootfs, *rootfs.rglob("*")]:
        if not p.is_dir() or p.is_symlink():
            os.lchown(p, 0, 0)
        os.utime(p, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)


# -- 3. the image ------------------------------------------------------------------------------
def make_image(layout: Path, tag: str, binary: Path, libs: list[dict[str, str]], work: Path) -> str:
    image = f"{layout}:{tag}"
    if layout.exists():
        shutil.rmtree(layout)
    run(["umoci", "init", "--layout", str(layout)])
    run(["umoci", "new", "--image", image])
    bundle = work / "bundle"
    run(["umoci", "unpack", "--image", image, str(bundle)])
    stage_rootfs(bundle / "rootfs", binary, libs)
    history = ["--history.created", CREATED, "--history.created_by", "native/image/build.py"]
    run(["umoci", "repack", *history, "--image", image, str(bundle)])
    labels = {
        "org.opencontainers.image.title": "pyagent-node",
        "org.opencontainers.image.description": "pyagent swarm node daemon (Raft, signed messages, gRPC API)",
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    config = [
        "--no-history",
        "--created", CREATED,
        "--author", "pyagent",
        "--os", "linux",
        "--architecture", "amd64",
        "--config.user", f"{UID}:{GID}",
        "--config.workingdir", DATA_DIR,
        "--config.env", "PYAGENT_LOG=info",
        # `run` belongs to the entrypoint: the StatefulSet's args (--config ...) replace Cmd only.
        "--config.entrypoint", BINARY, "--config.entrypoint", "run",
        "--config.cmd", "--config", "--config.cmd", "/etc/pyagent/node.json",
        "--config.volume", DATA_DIR,
        "--config.stopsignal", "SIGTERM",
    ]  # fmt: skip
    for port in PORTS:
        config += ["--config.exposedports", f"{port}/tcp"]
    for key, value in sorted(labels.items()):
        config += ["--config.label", f"{key}={value}"]
    run(["umoci", "config", *config, "--image", image])
    run(["umoci", "gc", "--layout", str(layout)])
    index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
    (manifest,) = index["manifests"]
    return str(manifest["digest"])


# -- 4. the archive ----------------------------------------------------------------------------
def make_archive(layout: Path, archive: Path) -> None:
    """The layout as one tar (an OCI archive: `ctr images import`, skopeo's `oci-archive:`)."""
    for p in [layout, *layout.rglob("*")]:
        os.utime(p, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)
    run(
        [
            "tar", "--create", "--file", str(archive), "--directory", str(layout),
            "--sort=name", f"--mtime=@{SOURCE_DATE_EPOCH}", "--owner=0", "--group=0", "--numeric-owner",
            "--mode=a+rX,u+w,go-w", "--format=posix",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            "oci-layout", "index.json", "blobs",
        ]
    )  # fmt: skip


# -- 5. the lock -------------------------------------------------------------------------------
def source_files(depinfo: Path) -> list[str]:
    """The checkout's files the binary was built from: cargo's dep-info of the binary (every source
    file of the workspace crates it compiled, and what their build scripts watch), the manifests,
    the lock file, the build scripts and this script, relative to the repository root."""
    text = depinfo.read_text(encoding="utf-8").split("\n", 1)[0]
    _, deps = text.split(": ", 1)
    paths = {Path(p.replace("\0", " ")) for p in deps.replace("\\ ", "\0").split()}
    files = set()
    for p in paths:
        p = p.resolve()
        if p.is_relative_to(REPO) and not p.is_relative_to(TARGET_DIR):
            files.add(p.relative_to(REPO).as_posix())
    crates = {f.split("/src/", 1)[0] for f in files if "/src/" in f}
    for crate in crates:
        for extra in ("Cargo.toml", "build.rs"):
            if (REPO / crate / extra).is_file():
                files.add(f"{crate}/{extra}")
    files |= {"native/Cargo.toml", "native/Cargo.lock", "native/.cargo/config.toml"}
    files.add(Path(__file__).resolve().relative_to(REPO).as_posix())
    return sorted(files)


def fingerprint(files: list[str]) -> dict[str, str]:
    return {f: sha256_file(REPO / f) if (REPO / f).is_file() else "missing" for f in files}


def tool_versions() -> dict[str, str]:
    rustc = run(["rustc", "-vV"])
    release = re.search(r"^release: (.+)$", rustc, re.M)
    commit = re.search(r"^commit-hash: (.+)$", rustc, re.M)
    return {
        "rustc": f"{release.group(1) if release else '?'} ({commit.group(1)[:9] if commit else '?'})",
        "umoci": run(["dpkg-query", "--show", "--showformat=${Version}", "umoci"]),
        "tar": run(["dpkg-query", "--show", "--showformat=${Version}", "tar"]),
    }


def read_lock(path: Path = LOCK) -> dict[str, object]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def stale_sources(lock: dict[str, object]) -> list[str]:
    """Files recorded in the lock whose content changed since the image was built (fast: no build)."""
    inputs = lock.get("inputs")
    recorded = inputs.get("files", {}) if isinstance(inputs, dict) else {}
    now = fingerprint(sorted(recorded))
    return [f for f in sorted(recorded) if recorded[f] != now[f]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="build and compare with the committed lock")
    args = parser.parse_args(argv)
    missing = [t for t in ("cargo", "umoci", "tar", "readelf", "ldd", "dpkg-query") if shutil.which(t) is None]
    if missing:
        log(f"missing tools: {', '.join(missing)} (Debian: apt-get install umoci binutils)")
        return 2
    if os.geteuid() != 0:
        log("needs root: umoci unpack and the owner 10001 of /var/lib/pyagent (run it as root)")
        return 2
    tag = version()
    start = time.monotonic()
    try:
        binary, cargo_seconds = cargo_build()
        libs = libraries(binary)
        with tempfile.TemporaryDirectory(prefix="pyagent-image-") as work:
            digest = make_image(LAYOUT, tag, binary, libs, Path(work))
        make_archive(LAYOUT, ARCHIVE)
        files = source_files(binary.with_suffix(".d"))
    except BuildError as e:
        log(f"error: {e}")
        return 1
    manifest = json.loads((LAYOUT / "blobs" / "sha256" / digest.split(":")[1]).read_text(encoding="utf-8"))
    lock = {
        "comment": "Written by `make image` (native/image/build.py); pyagent compile pins build: native to it.",
        "repository": REPOSITORY,
        "tag": tag,
        "digest": digest,
        "config": manifest["config"]["digest"],
        "layers": [layer["digest"] for layer in manifest["layers"]],
        "binary": {"path": BINARY, "sha256": sha256_file(binary), "size": binary.stat().st_size},
        "libraries": libs,
        "inputs": {
            "target": TRIPLE,
            "rustflags": [*RUSTFLAGS, f"--remap-path-prefix=<checkout>={REMAP_REPO}",
                          f"--remap-path-prefix=<CARGO_HOME>={REMAP_CARGO_HOME}"],
            "sourceDateEpoch": SOURCE_DATE_EPOCH,
            "tools": tool_versions(),
            "files": fingerprint(files),
        },
    }  # fmt: skip
    text = json.dumps(lock, indent=2, sort_keys=True) + "\n"
    ref = f"{REPOSITORY}@{digest}"
    log(f"built in {time.monotonic() - start:.0f} s (cargo {cargo_seconds:.0f} s): {ref}")
    log(f"OCI layout {LAYOUT.relative_to(REPO)}, tag {tag}")
    log(f"OCI archive {ARCHIVE.relative_to(REPO)}, {sha256_file(ARCHIVE)}")
    if args.check:
        old = LOCK.read_text(encoding="utf-8") if LOCK.is_file() else ""
        if old != text:
            was = json.loads(old).get("digest") if old else "nothing"
            what = f"it pins {was}, the build gives {digest}" if was != digest else "the recorded inputs differ"
            log(f"error: {LOCK.relative_to(REPO)} is stale: {what}")
            log("run `make image` and `make golden`, and commit the lock and the stacks")
            return 1
        log(f"{LOCK.relative_to(REPO)} matches the build")
    else:
        LOCK.write_text(text, encoding="utf-8")
        log(f"wrote {LOCK.relative_to(REPO)}; run `make golden` if the digest changed")
    print(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
