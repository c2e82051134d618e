#!/usr/bin/env python3
"""Fetch the pieces of vLLM (and cbor2 and msgspec, which its hashing and events use) that the
KV_v2 differential tests and benchmark run, into .bench-cache/ (git-ignored; vLLM's code is never committed).

Idempotent: returns at once when the cache is complete. When the registry cannot be reached
it says so and exits 0 (the tests then skip, saying why), or 3 with --strict.

vLLM's sdist cannot go through `pip download` (pip builds its metadata, which needs CUDA
tooling), so the file is found through the package index's JSON API (PEP 691), downloaded
and checked against the index's sha256, and only the needed files are extracted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from foreign import download_wheel, fetch_main

VLLM_VERSION = "0.33.0"
CBOR2_VERSION = "6.3.0"
MSGSPEC_VERSION = "0.22.0"  # decodes vLLM's KV event batches in the event-format test
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench-cache"
VLLM_DIR = CACHE / f"vllm-{VLLM_VERSION}"
PYLIB = CACHE / "pylib"
FILES = (
    "vllm/v1/core/block_pool.py",
    "vllm/v1/core/kv_cache_utils.py",
    "vllm/utils/hashing.py",
    "vllm/distributed/kv_events.py",
)
WHEELS = {"cbor2": CBOR2_VERSION, "msgspec": MSGSPEC_VERSION}


def ready() -> bool:
    return all((VLLM_DIR / f).is_file() for f in FILES) and all((PYLIB / name).is_dir() for name in WHEELS)


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def fetch_vllm() -> None:
    req = urllib.request.Request(
        f"{index_url()}/vllm/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        files = json.load(r)["files"]
    name = f"vllm-{VLLM_VERSION}.tar.gz"
    entry = next(f for f in files if f["filename"] == name)
    with urllib.request.urlopen(entry["url"], timeout=300) as r:
        data = r.read()
    want = entry["hashes"]["sha256"]
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise RuntimeError(f"{name}: sha256 {got} != index's {want}")
    prefix = f"vllm-{VLLM_VERSION}/"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for f in (*FILES, "LICENSE"):
            member = tar.extractfile(prefix + f)
            if member is None:
                raise RuntimeError(f"{name} has no {f}")
            out = VLLM_DIR / f
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(member.read())


def fetch_wheels() -> None:
    """cbor2 (vLLM's sha256_cbor) and msgspec (vLLM's event structs), unpacked into PYLIB."""
    PYLIB.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in WHEELS.items():
            if (PYLIB / name).is_dir():
                continue
            wheel = download_wheel(name, version, Path(tmp))
            with zipfile.ZipFile(wheel) as z:
                z.extractall(PYLIB)


def fetch() -> None:
    if not all((VLLM_DIR / f).is_file() for f in FILES):
        fetch_vllm()
    fetch_wheels()


def main() -> int:
    return fetch_main("fetch_vllm", CACHE, ready, fetch, f"vLLM {VLLM_VERSION} block pool, cbor2 and msgspec")


if __name__ == "__main__":
    sys.exit(main())
