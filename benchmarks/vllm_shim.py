"""Load vLLM's own BlockPool (``vllm/v1/core/block_pool.py`` and ``kv_cache_utils.py``, as
fetched by ``fetch_vllm.py``) on CPU without torch or the rest of vLLM.

Only the modules those two files import are stubbed, with the few names they use; the
block pool, free queue, hash map and hashing run as vLLM ships them.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fetch_vllm import PYLIB, VLLM_DIR, VLLM_VERSION, ready
from foreign import stub

__all__ = ["VLLM_VERSION", "VllmUnavailable", "load"]


class VllmUnavailable(RuntimeError):
    """The cached vLLM sources are missing (run benchmarks/fetch_vllm.sh)."""


def _load_file(name: str, rel: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, VLLM_DIR / rel)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_loaded: types.SimpleNamespace | None = None


def load() -> types.SimpleNamespace:
    """``BlockPool``, ``KVCacheBlock``, ``hash_block_tokens``, ``init_none_hash``,
    ``sha256_cbor``, ``make_block_hash_with_group_id`` and the ``events`` module
    (``KVEventBatch``...) from vLLM; ``envs`` is the stub holding
    ``VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES``."""
    global _loaded
    if _loaded is not None:
        return _loaded
    if not ready():
        raise VllmUnavailable(
            f"vLLM {VLLM_VERSION} sources not cached in {VLLM_DIR.parent} "
            "(run benchmarks/fetch_vllm.sh; it needs the package index)"
        )
    if str(PYLIB) not in sys.path:
        sys.path.insert(0, str(PYLIB))
    for pkg in (
        "vllm",
        "vllm.v1",
        "vllm.v1.core",
        "vllm.utils",
        "vllm.multimodal",
        "vllm.distributed",
    ):
        stub(pkg)
    stub("vllm.envs", VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=False)
    sys.modules["vllm"].envs = sys.modules["vllm.envs"]  # type: ignore[attr-defined]
    stub("vllm.config")
    stub("vllm.logger", init_logger=logging.getLogger)
    stub("vllm.multimodal.utils", get_mm_features_in_window=lambda *a, **k: (0, 0))
    stub("vllm.utils.math_utils", cdiv=lambda a, b: -(a // -b))
    stub("vllm.v1.kv_cache_interface")
    stub("vllm.v1.kv_cache_spec_registry")
    stub("vllm.v1.request")
    stub("vllm.v1.utils", tensor_data=lambda t: t)
    stub("vllm.v1.core.kv_cache_metrics")
    # kv_events.py itself (its msgspec structs are the wire format) needs only these names
    # from the rest of vLLM and zmq, which it uses for publishing, not for the structs.
    stub("zmq")
    stub("vllm.config.kv_events")
    stub("vllm.utils.network_utils")
    hashing = _load_file("vllm.utils.hashing", "vllm/utils/hashing.py")
    utils = _load_file("vllm.v1.core.kv_cache_utils", "vllm/v1/core/kv_cache_utils.py")
    events = _load_file("vllm.distributed.kv_events", "vllm/distributed/kv_events.py")
    pool = _load_file("vllm.v1.core.block_pool", "vllm/v1/core/block_pool.py")
    init: Callable[[Any], None] = utils.init_none_hash
    init(hashing.sha256_cbor)
    _loaded = types.SimpleNamespace(
        BlockPool=pool.BlockPool,
        KVCacheBlock=utils.KVCacheBlock,
        hash_block_tokens=utils.hash_block_tokens,
        init_none_hash=init,
        sha256_cbor=hashing.sha256_cbor,
        make_block_hash_with_group_id=utils.make_block_hash_with_group_id,
        utils=utils,
        events=events,
        envs=sys.modules["vllm.envs"],
    )
    return _loaded


def vllm_source_path() -> Path:
    return VLLM_DIR
