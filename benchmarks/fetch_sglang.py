#!/usr/bin/env python3
"""Fetch SGLang's radix cache (and the torch it runs on) for the KV_v2 benchmark, into
.bench-cache/ (git-ignored; SGLang's code is never committed). Not part of the tests or of
.ci/setup: the download is about 5 GB.

    python benchmarks/fetch_sglang.py           # idempotent; exits 0 with a message when it cannot
    python benchmarks/fetch_sglang.py --strict  # exits 3 instead

- torch goes into its own venv, ``.bench-cache/sglang-venv`` (never the project's .venv).
  Only PyPI is reachable here, and PyPI's Linux torch wheels are the CUDA builds: with
  ``--no-deps``, ``import torch`` fails on CPU (``ValueError: libcublasLt.so.*[0-9] not found
  in the system path``: libtorch links the CUDA libraries even when no GPU is used), so
  torch is installed with its dependencies (the nvidia-* / cuda-toolkit wheels). It then
  runs on CPU without a GPU. numpy is added to silence torch's warning.
- SGLang's wheel is downloaded with ``--no-deps`` (its own dependencies are the whole
  server) and only the files of the radix cache, its base class and parameters, the eviction
  policies, the event recorder and the token-to-KV-pool allocators are extracted, with the
  licence. ``sglang_shim.py`` loads them.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from foreign import download_wheel, fetch_main

SGLANG_VERSION = "0.5.23"
TORCH_VERSION = "2.14.1"  # the version sglang 0.5.23 pins (Requires-Dist: torch==2.14.1)
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench-cache"
SGLANG_DIR = CACHE / f"sglang-{SGLANG_VERSION}"
VENV = CACHE / "sglang-venv"
SITE = VENV / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
FILES = (
    "sglang/srt/mem_cache/radix_cache.py",
    "sglang/srt/mem_cache/base_prefix_cache.py",
    "sglang/srt/mem_cache/cache_init_params.py",
    "sglang/srt/mem_cache/evict_policy.py",
    "sglang/srt/mem_cache/events.py",
    "sglang/srt/mem_cache/utils.py",
    "sglang/srt/mem_cache/allocator/base.py",
    "sglang/srt/mem_cache/allocator/paged.py",
    "sglang/srt/mem_cache/unified_cache/component_type.py",
)
LICENSE = f"sglang-{SGLANG_VERSION}.dist-info/licenses/LICENSE"


def sources_ready() -> bool:
    return all((SGLANG_DIR / f).is_file() for f in FILES)


def torch_ready() -> bool:
    return (SITE / "torch" / "__init__.py").is_file() and (SITE / "numpy").is_dir()


def ready() -> bool:
    return sources_ready() and torch_ready()


def pip(*args: str) -> None:
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", *args], check=True)


def fetch_torch() -> None:
    if not (VENV / "bin" / "python").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip("install", "--quiet", f"torch=={TORCH_VERSION}", "numpy")


def fetch_sources() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel("sglang", SGLANG_VERSION, Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            for f in (*FILES, LICENSE):
                out = SGLANG_DIR / (Path(f).name if f == LICENSE else f)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(z.read(f))


def fetch() -> None:
    if not sources_ready():
        fetch_sources()
    if not torch_ready():
        fetch_torch()


def main() -> int:
    done = f"SGLang {SGLANG_VERSION} radix cache and torch {TORCH_VERSION}"
    return fetch_main("fetch_sglang", CACHE, ready, fetch, done)


if __name__ == "__main__":
    sys.exit(main())
