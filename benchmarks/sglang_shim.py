"""Load SGLang's own RadixCache (``sglang/srt/mem_cache/radix_cache.py``) and its paged
token-to-KV-pool allocator, as fetched by ``fetch_sglang.py``, on CPU with the real torch
and without the rest of SGLang.

torch comes from ``.bench-cache/sglang-venv``, whose site-packages is appended to
``sys.path`` (same CPython, so its extension modules load; appended, so the project's own
packages win). The radix tree, its node splitting, lock references, eviction heap and LRU
strategy, the ``BasePrefixCache`` methods (``lock``, ``unlock``) and the allocator's page
lists run as SGLang ships them. Only the modules those files import are stubbed, each for a
reason given next to it; none of them is on the path the benchmark drives.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from pathlib import Path
from typing import Any

from fetch_sglang import SGLANG_DIR, SGLANG_VERSION, SITE, TORCH_VERSION, ready
from foreign import stub

__all__ = ["SGLANG_VERSION", "TORCH_VERSION", "SglangUnavailable", "load"]


class SglangUnavailable(RuntimeError):
    """SGLang's sources or torch are missing, or torch does not import."""


def _load_file(name: str) -> types.ModuleType:
    path = SGLANG_DIR / (name.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, mod)
    spec.loader.exec_module(mod)
    return mod


_loaded: types.SimpleNamespace | None = None


def load() -> types.SimpleNamespace:
    """``torch``, ``RadixCache``, ``RadixKey``, ``CacheInitParams``, ``MatchPrefixParams``,
    ``InsertParams``, ``EvictParams`` and ``PagedTokenToKVPoolAllocator`` from SGLang."""
    global _loaded
    if _loaded is not None:
        return _loaded
    if not ready():
        raise SglangUnavailable(
            f"SGLang {SGLANG_VERSION} sources or torch {TORCH_VERSION} not cached in "
            f"{SGLANG_DIR.parent} (run benchmarks/fetch_sglang.py; it needs the package index "
            "and about 5 GB)"
        )
    if str(SITE) not in sys.path:
        sys.path.append(str(SITE))
    try:
        # Imported by name: torch is not installed where mypy runs.
        torch: Any = importlib.import_module("torch")
    except Exception as e:  # an unusable torch is a reason to skip, whatever it raises
        raise SglangUnavailable(f"torch {TORCH_VERSION} does not import: {e!r}") from e
    for pkg in (
        "sglang",
        "sglang.srt",
        "sglang.srt.mem_cache",
        "sglang.srt.mem_cache.unified_cache",
        "sglang.srt.mem_cache.cpp_utils",
        "sglang.srt.disaggregation",
        "sglang.srt.observability",
        "sglang.kernels",
        "sglang.kernels.ops",
        "sglang.kernels.ops.kvcache",
        "sglang.kernels.ops.memory",
    ):
        stub(pkg)
    # KV events (off: enable_kv_cache_events=False) and their hashing.
    stub("sglang.srt.disaggregation.kv_events")
    stub("sglang.srt.mem_cache.cpp_utils.native_hash")
    # Metrics (off: enable_metrics=False) and the server's runtime context they read.
    stub("sglang.srt.observability.metrics_collector")
    stub("sglang.srt.runtime_context")
    # Server settings, read only by the Mooncake memory-pool helper in mem_cache/utils.py.
    stub("sglang.srt.environ")
    # GPU kernels: MLA buffer copies (unused by the tree) and the Triton page allocators,
    # which the paged allocator skips when the platform has no Triton (CPU).
    stub("sglang.kernels.ops.kvcache.mla_buffer")
    stub("sglang.kernels.ops.memory.allocator")
    stub(
        "sglang.srt.platforms",
        current_platform=types.SimpleNamespace(capabilities=types.SimpleNamespace(supports_triton=False)),
    )
    # KV tensors and the request-to-token table: named in type hints only here (the
    # benchmark passes its own request-to-token table, see kv_v2.py).
    stub("sglang.srt.mem_cache.memory_pool")
    # sglang/srt/utils/common.py imports the whole server's dependencies: the helpers the
    # allocator and radix_cache.py import, as SGLang defines them on CPU.
    stub(
        "sglang.srt.utils",
        get_bool_env_var=lambda name, default="false": False,  # SGLANG_DEBUG_MEMORY_POOL off
        is_hip=lambda: False,
        next_power_of_2=lambda n: 1 if n == 0 else 1 << (n - 1).bit_length(),
        get_num_new_pages=None,  # alloc_extend/alloc_decode only; the benchmark calls alloc
    )
    stub("sglang.srt.utils.common", ceil_align=lambda x, y: -(x // -y) * y)
    logging.getLogger("sglang").setLevel(logging.WARNING)
    _load_file("sglang.srt.mem_cache.unified_cache.component_type")
    _load_file("sglang.srt.mem_cache.evict_policy")
    _load_file("sglang.srt.mem_cache.utils")
    _load_file("sglang.srt.mem_cache.events")
    stub("sglang.srt.mem_cache.allocator")
    base = _load_file("sglang.srt.mem_cache.allocator.base")
    sys.modules["sglang.srt.mem_cache.allocator"].BaseTokenToKVPoolAllocator = (  # type: ignore[attr-defined]
        base.BaseTokenToKVPoolAllocator
    )
    paged = _load_file("sglang.srt.mem_cache.allocator.paged")
    params = _load_file("sglang.srt.mem_cache.cache_init_params")
    bpc = _load_file("sglang.srt.mem_cache.base_prefix_cache")
    radix = _load_file("sglang.srt.mem_cache.radix_cache")
    _loaded = types.SimpleNamespace(
        torch=torch,
        RadixCache=radix.RadixCache,
        RadixKey=radix.RadixKey,
        CacheInitParams=params.CacheInitParams,
        MatchPrefixParams=bpc.MatchPrefixParams,
        InsertParams=bpc.InsertParams,
        EvictParams=bpc.EvictParams,
        PagedTokenToKVPoolAllocator=paged.PagedTokenToKVPoolAllocator,
    )
    return _loaded


def sglang_source_path() -> Path:
    return SGLANG_DIR
