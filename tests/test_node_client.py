"""The Python client signs exactly the bytes the daemon verifies (docs/node-daemon.md)."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pyagent_compile._native import Ed25519SigningKey
from pyagent_compile.runtime.nodeapi.client import (
    Signer,
    _Sequence,
    load_identity,
    public_key_b64,
    put_command,
    signed_bytes,
)


def test_signature_matches_the_daemons_pinned_vector() -> None:
    # auth::tests::command_signature_vector in native/crates/pyagent-node
    key = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    public = base64.b64decode(public_key_b64(key)).hex()
    assert public == "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
    signature = key.sign(signed_bytes("laptop", 1, 2, b"cmd")).hex()
    assert signature == (
        "a47a6e5ecca6e36fc9f37fbbfabcc3818759e728d0961d4144f6ecf2a55247b8"
        "188891779aa1e8d3950f48594926e43b2f51612e2cba02167e596eeac051aa0c"
    )


def test_native_signing_key_matches_the_pinned_vector_and_cryptography() -> None:
    key = Ed25519SigningKey(b"\x01" * 32)
    assert key.public_key().hex() == "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
    assert key.sign(signed_bytes("laptop", 1, 2, b"cmd")).hex() == (
        "a47a6e5ecca6e36fc9f37fbbfabcc3818759e728d0961d4144f6ecf2a55247b8"
        "188891779aa1e8d3950f48594926e43b2f51612e2cba02167e596eeac051aa0c"
    )
    reference = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    native = Ed25519SigningKey(bytes(range(32)))
    for size in (0, 1, 64, 300, 5000):
        message = bytes(i % 251 for i in range(size))
        assert native.sign(message) == reference.sign(message)  # Ed25519 is deterministic
    with pytest.raises(ValueError, match="32 bytes"):
        Ed25519SigningKey(b"short")
    assert "secret" in repr(native) and bytes(range(32)).hex() not in repr(native)


def test_signer_from_file_signs_with_the_native_key(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    path.write_text(base64.b64encode(b"\x01" * 32).decode() + "\n")
    signer = Signer.from_file("laptop", 1, path)
    assert isinstance(signer.key, Ed25519SigningKey)
    command = signer.sign(put_command("k", b"x"))
    load_identity(path).public_key().verify(command.signature, signed_bytes("laptop", 1, command.seq, command.command))
    path.write_text(base64.b64encode(b"\x01" * 31).decode() + "\n")
    with pytest.raises(ValueError, match="32 bytes"):
        Signer.from_file("laptop", 1, path)


def test_identity_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    path.write_text(base64.b64encode(b"\x01" * 32).decode() + "\n")
    assert (
        public_key_b64(load_identity(path))
        == base64.b64encode(bytes.fromhex("8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c")).decode()
    )


def test_sequence_numbers_are_unique_across_threads_and_follow_the_clock() -> None:
    # The daemon remembers the last 4096 numbers a signer used and refuses those and any below
    # them all: numbers must be unique, and, like the daemon's own, never behind the clock, so
    # that a client sharing a node's key stays above what the node itself signed.
    start = time.time_ns() // 1000
    sequence = _Sequence()
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(500):
            value = sequence.next()
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 4000 and min(seen) >= start
    # The clock is read first: next() must be at or after it (the other order races the clock).
    now = time.time_ns() // 1000
    assert sequence.next() >= now
    key = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    signer = Signer("laptop", 1, key, _Sequence())
    a, b = signer.sign(put_command("k", b"x")), signer.sign(put_command("k", b"x"))
    assert b.seq > a.seq and a.signer == 1
    key.public_key().verify(a.signature, signed_bytes("laptop", 1, a.seq, a.command))  # raises if wrong
