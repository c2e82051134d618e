"""KV_v2, the paged KV-cache block manager a pyagent node runs (Rust, `native/crates/kv_v2`).

Two ways to drive a :class:`KvPool`:

* the request API (``req_admit``, ``req_step``, ``req_free``, ``req_fork``): block tables stay
  in Rust, so a scheduler step is one call carrying a request id and key blobs;
* the block API (``lookup``, ``acquire``, ``allocate``, ``register``, ``free_request``...),
  call for call like vLLM's ``BlockPool``, with block-id lists.

Keys cross into Rust as one ``bytes`` blob of 16-byte keys (see :func:`split_keys`), made by
:class:`BlockHasher`. See docs/kv_v2.md.
"""

from pyagent_compile._native import (
    NULL_BLOCK,
    BlockHasher,
    KvCacheError,
    KvCorruptIndexError,
    KvEvent,
    KvOutOfBlocksError,
    KvPool,
    KvStats,
)

KEY_BYTES = 16

__all__ = [
    "KEY_BYTES",
    "NULL_BLOCK",
    "BlockHasher",
    "KvCacheError",
    "KvCorruptIndexError",
    "KvEvent",
    "KvOutOfBlocksError",
    "KvPool",
    "KvStats",
    "join_keys",
    "split_keys",
]


def split_keys(blob: bytes) -> list[bytes]:
    """The individual 16-byte keys of a key blob."""
    if len(blob) % KEY_BYTES:
        raise ValueError(f"a key blob is a multiple of {KEY_BYTES} bytes, got {len(blob)}")
    return [blob[i : i + KEY_BYTES] for i in range(0, len(blob), KEY_BYTES)]


def join_keys(keys: list[bytes]) -> bytes:
    """One blob from 16-byte keys."""
    if any(len(k) != KEY_BYTES for k in keys):
        raise ValueError(f"every key is {KEY_BYTES} bytes")
    return b"".join(keys)
