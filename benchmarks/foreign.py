"""What the benchmarks need to run another project's code without installing it: a wheel
fetched from PyPI with ``--no-deps``, and stub modules for the imports that code makes but the
benchmark never reaches. Used by fetch_vllm/vllm_shim and fetch_sglang/sglang_shim, whose mains share `fetch_main`."""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any


def download_wheel(name: str, version: str, dest: Path) -> Path:
    """``pip download --no-deps`` of one binary wheel into ``dest``; the wheel's path."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--quiet",
            f"{name}=={version}",
            "-d",
            str(dest),
        ],
        check=True,
    )
    return next(dest.glob(f"{name}-{version}-*.whl"))


def fetch_main(tool: str, cache: Path, ready: Callable[[], bool], fetch: Callable[[], None], done: str) -> int:
    """A fetch script's main: nothing to do when ``ready()``, else ``fetch()`` into ``cache``.
    Without the registry it says the comparison will skip and exits 0 (3 with ``--strict``)."""
    if ready():
        print(f"{tool}: cached in {cache}")
        return 0
    cache.mkdir(exist_ok=True)
    try:
        fetch()
    except (OSError, KeyError, RuntimeError, StopIteration, subprocess.CalledProcessError) as e:
        print(f"{tool}: unavailable ({e!r}); the comparison will skip")
        return 3 if "--strict" in sys.argv[1:] else 0
    print(f"{tool}: {done} in {cache}")
    return 0


class AnyNames(types.ModuleType):
    """A stub module that hands out a placeholder class for any public name."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (), {})
        setattr(self, name, cls)
        return cls


def stub(name: str, **attrs: Any) -> types.ModuleType:
    """Registers a stub package `name` (with `attrs`) in sys.modules and on its parent."""
    mod = AnyNames(name)
    mod.__path__ = []  # a package, so submodules can be registered under it
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, mod)
    return mod
