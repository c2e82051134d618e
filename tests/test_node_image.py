"""The node image that `make image` builds (native/image/build.py, docs/node-image.md).

Fast, in every `make test`: the committed lock still describes the sources, and the dev stack
pins the image by the lock's digest. With an image built here (`make image`, 2.5 to 10 minutes cold
on 2 cores, so not part of `make test` itself) and Debian's umoci and runc: the image holds only
the binary, what it links against and its few files, and it runs as a real container as user
10001, with no capabilities, on a read-only root file system.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyagent_compile.pipeline import compile_spec
from pyagent_compile.plan import node_image
from tests.conftest import ROOT


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pyagent_image_build", ROOT / "native" / "image" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load_builder()
LOCK = build.read_lock()
HINT = "run `make image` and `make golden`, and commit native/image/pyagent-node.lock.json and stacks/"


def test_the_lock_describes_the_current_sources() -> None:
    """Every source file the image was built from (cargo's dep-info of the binary, the manifests,
    Cargo.lock, the build script) still has the content recorded in the lock."""
    assert LOCK["inputs"]["files"], "the lock records the files the image was built from"
    stale = build.stale_sources(LOCK)
    assert not stale, f"changed since the node image was built: {', '.join(stale)}; {HINT}"


def test_the_compiler_reads_the_committed_lock() -> None:
    assert node_image.LOCK_PATH.resolve() == build.LOCK.resolve()
    assert node_image.load_lock().digest == LOCK["digest"]


def test_a_built_image_is_pinned_by_the_locked_digest() -> None:
    result = compile_spec(ROOT / "examples" / "laptop" / "swarm.yaml", "examples/laptop/swarm.yaml", "dev")
    assert result.ok, result.diagnostics
    (environment,) = result.environments
    assert environment.plan is not None
    images = {
        c["image"]
        for o in environment.plan.objects
        if o.body["kind"] == "StatefulSet"
        for c in o.body["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"ghcr.io/pyagent/pyagent-node@{LOCK['digest']}"}


def test_a_bad_lock_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "lock.json"
    bad.write_text(json.dumps({"repository": "r", "tag": "t", "digest": "sha256:abc"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a sha256 digest"):
        node_image.load_lock(bad)


def test_stale_sources_names_the_changed_file(tmp_path: Path) -> None:
    lock = {"inputs": {"files": {"native/Cargo.toml": "sha256:" + "0" * 64}}}
    assert build.stale_sources(lock) == ["native/Cargo.toml"]


# -- the built image, run under runc ------------------------------------------------------------
def _built_image_skip_reason() -> str | None:
    missing = [t for t in ("umoci", "runc") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian: apt-get install umoci runc)"
    if os.geteuid() != 0:
        return "needs root: runc runs the container and umoci unpacks files owned by 10001"
    index = build.LAYOUT / "index.json"
    if not index.is_file():
        return "no node image built here: run `make image` (a cold release build, minutes)"
    (manifest,) = json.loads(index.read_text(encoding="utf-8"))["manifests"]
    if manifest["digest"] != LOCK["digest"]:
        return f"the image in {build.LAYOUT} is {manifest['digest']}, not the locked one: run `make image`"
    return None


needs_image = pytest.mark.skipif(_built_image_skip_reason() is not None, reason=str(_built_image_skip_reason()))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("image") / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{build.LAYOUT}:{LOCK['tag']}", str(path)], check=True, capture_output=True
    )
    return path


@pytest.fixture(scope="module")
def runc_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("runc-state")
    yield root
    for state in root.iterdir():  # a container a failed test left behind
        subprocess.run(["runc", "--root", str(root), "delete", "--force", state.name], capture_output=True)


_ids = count()


def _run(
    bundle: Path, runc_root: Path, args: list[str], *, read_only: bool = True, mounts: tuple[dict[str, Any], ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the image's binary as the image's user under runc, the way the StatefulSet runs it:
    no capabilities, no new privileges, a read-only root file system and a tmpfs on /tmp."""
    spec = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    process = spec["process"]
    process.update(args=[build.BINARY, *args], terminal=False, noNewPrivileges=True)
    process["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
    spec["root"]["readonly"] = read_only
    tmpfs = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
    # umoci puts a tmpfs on the image's volume (/var/lib/pyagent); the pod mounts its own volume
    # there, and without one the image's own folder is what the tests look at.
    own = [m for m in spec["mounts"] if m["destination"] not in ("/tmp", build.DATA_DIR)]
    spec["mounts"] = [*own, tmpfs, *mounts]
    (bundle / "config.json").write_text(json.dumps(spec), encoding="utf-8")
    name = f"pyagent-image-test-{os.getpid()}-{next(_ids)}"
    try:
        return subprocess.run(
            ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), name],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", name], capture_output=True)


@needs_image
def test_the_image_holds_only_the_binary_and_what_it_links_against(bundle: Path) -> None:
    rootfs = bundle / "rootfs"
    files = sorted("/" + p.relative_to(rootfs).as_posix() for p in rootfs.rglob("*") if not p.is_dir())
    # What the binary in the image needs, found again from its own ELF headers (not from the lock):
    # DT_NEEDED names in the loader's default folder, and the interpreter (a link in Debian).
    needed: set[str] = set()
    queue = [rootfs / build.BINARY.lstrip("/")]
    while queue:
        names, interp = build.elf_needs(queue.pop())
        for path in [*(f"/lib/x86_64-linux-gnu/{n}" for n in names), *([interp] if interp else [])]:
            inside = rootfs / path.lstrip("/")
            if path in needed:
                continue
            assert inside.is_symlink() or inside.is_file(), f"{path} is needed but not in the image"
            needed.add(path)
            if inside.is_symlink():
                target = os.readlink(inside)
                assert target.startswith("/"), target
                needed.add(target)
                inside = rootfs / target.lstrip("/")
            queue.append(inside)
    config = {"/etc/passwd", "/etc/group", "/etc/nsswitch.conf"}
    assert set(files) == {build.BINARY, *needed, *config}, "nothing else is in the image"
    assert {lib["package"] for lib in LOCK["libraries"]} <= {"libc6", "libgcc-s1"}
    owners = {p: (rootfs / p.lstrip("/")).stat() for p in ("/var/lib/pyagent", "/etc/pyagent", "/tmp")}
    assert (owners["/var/lib/pyagent"].st_uid, owners["/var/lib/pyagent"].st_gid) == (10001, 10001)
    assert owners["/etc/pyagent"].st_uid == 0 and owners["/tmp"].st_mode & 0o1777 == 0o1777


@needs_image
def test_the_binary_names_no_folder_of_the_machine_that_built_it(bundle: Path) -> None:
    data = (bundle / "rootfs" / build.BINARY.lstrip("/")).read_bytes()
    assert str(build.REPO).encode() not in data
    assert str(build.cargo_home()).encode() not in data
    assert build.REMAP_REPO.encode() in data  # panic locations point at the remapped checkout
    assert b".note.gnu.build-id" not in data


@needs_image
def test_runs_as_a_non_root_user(bundle: Path, runc_root: Path) -> None:
    config = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    assert (config["process"]["user"]["uid"], config["process"]["user"]["gid"]) == (10001, 10001)
    assert config["process"]["args"][:2] == [build.BINARY, "run"]  # the StatefulSet's args replace Cmd
    version = _run(bundle, runc_root, ["--version"])
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"pyagent-node {LOCK['tag']}"
    usage = _run(bundle, runc_root, ["--help"])
    assert usage.returncode == 0 and "keygen" in usage.stdout, usage.stderr


@needs_image
def test_writes_its_key_where_it_may(bundle: Path, runc_root: Path, tmp_path: Path) -> None:
    in_tmp = _run(bundle, runc_root, ["keygen", "--data-dir", "/tmp/node"])
    assert in_tmp.returncode == 0, in_tmp.stderr
    assert len(in_tmp.stdout.strip()) >= 43, "the public key, base64"
    # The data volume: a host folder owned by 10001, as the kubelet prepares it with fsGroup.
    volume = tmp_path / "data"
    volume.mkdir(mode=0o700)
    os.chown(volume, 10001, 10001)
    bind = {"destination": "/var/lib/pyagent", "type": "bind", "source": str(volume), "options": ["rbind", "rw"]}
    made = _run(bundle, runc_root, ["keygen", "--data-dir", "/var/lib/pyagent"], mounts=(bind,))
    assert made.returncode == 0, made.stderr
    (key,) = list(volume.iterdir())
    assert (key.stat().st_uid, key.stat().st_gid) == (10001, 10001), "written by user 10001, not root"
    assert key.stat().st_mode & 0o077 == 0, "the private key is readable by its owner only"


@needs_image
def test_cannot_write_where_it_must_not(bundle: Path, runc_root: Path) -> None:
    # A read-only root file system: not even its own folder in the image is writable.
    read_only = _run(bundle, runc_root, ["keygen", "--data-dir", "/var/lib/pyagent/k"])
    assert read_only.returncode != 0 and "Read-only file system" in read_only.stderr, read_only
    # The same folder with a writable root: user 10001 owns it, so it works...
    writable = _run(bundle, runc_root, ["keygen", "--data-dir", "/var/lib/pyagent/k"], read_only=False)
    assert writable.returncode == 0, writable.stderr
    # ...but root's folders stay closed to it: no root, no CAP_DAC_OVERRIDE.
    for folder in ("/etc/pyagent", "/usr/local/bin", "/"):
        denied = _run(bundle, runc_root, ["keygen", "--data-dir", f"{folder.rstrip('/')}/k"], read_only=False)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, (folder, denied)
