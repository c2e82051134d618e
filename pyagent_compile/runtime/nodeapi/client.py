"""A small, typed client for `pyagent.node.v1.Node`: signed commands, leader following.

The bytes a signature covers are the daemon's contract (docs/node-daemon.md):
"pyagent.node.v1.Command" 0x00 swarm 0x00 signer(u64 BE) seq(u64 BE) command.
"""

from __future__ import annotations

import base64
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyagent_compile._native import Ed25519SigningKey
from pyagent_compile.runtime.nodeapi import node_pb2 as pb
from pyagent_compile.runtime.nodeapi import node_pb2_grpc as pb_grpc

COMMAND_DOMAIN = b"pyagent.node.v1.Command"
LEADER_ID_TRAILER = "pyagent-leader-id"
LEADER_GRPC_TRAILER = "pyagent-leader-grpc"


def _identity_seed(path: Path) -> bytes:
    """`identity.key`: base64 of the 32-byte Ed25519 seed, one line."""
    return base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)


def load_identity(path: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_identity_seed(path))


class SigningKey(Protocol):
    """What signs commands: `cryptography`'s Ed25519PrivateKey or the native (faster) key."""

    def sign(self, data: bytes, /) -> bytes: ...


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def signed_bytes(swarm: str, signer: int, seq: int, command: bytes) -> bytes:
    return COMMAND_DOMAIN + b"\x00" + swarm.encode() + b"\x00" + struct.pack(">QQ", signer, seq) + command


class _Sequence:
    """Per-signer sequence numbers on a hybrid clock, as the daemon signs its own commands: strictly
    increasing and never behind the time in microseconds. The replay window (the last 4096
    numbers accepted per signer) refuses only a number it remembers, or one below all it
    remembers, so following the clock keeps a long-lived client above the window even when a
    daemon signing with the same key (a node's own heartbeats, when the local CLI signs as that
    node) moves it on; a number both happen to pick is refused once and signed again
    (`runtime/tasks.py`)."""

    def __init__(self) -> None:
        self._last = time.time_ns() // 1000
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            return self._last


@dataclass
class Signer:
    swarm: str
    node_id: int
    key: SigningKey
    sequence: _Sequence

    @classmethod
    def from_file(cls, swarm: str, node_id: int, path: Path) -> Signer:
        # ed25519-dalek through the native module: half the cost of OpenSSL's signing (14 vs
        # 25 us here), which a client submitting thousands of commands a second feels.
        seed = _identity_seed(path)
        if len(seed) != 32:
            raise ValueError(f"{path}: an Ed25519 seed is 32 bytes, found {len(seed)}")
        return cls(swarm, node_id, Ed25519SigningKey(seed), _Sequence())

    def sign(self, command: pb.Command) -> pb.SignedCommand:
        body = command.SerializeToString()
        seq = self.sequence.next()
        signature = self.key.sign(signed_bytes(self.swarm, self.node_id, seq, body))
        return pb.SignedCommand(command=body, signer=self.node_id, seq=seq, signature=signature)


class NotLeader(Exception):
    def __init__(self, leader_id: int, leader_grpc: str) -> None:
        super().__init__(f"not the leader; leader is {leader_id} at {leader_grpc or '?'}")
        self.leader_id = leader_id
        self.leader_grpc = leader_grpc


class NodeClient:
    """One channel to one node. Thread-safe (gRPC channels are)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address, options=[("grpc.enable_retries", 0)])
        self.stub: Any = pb_grpc.NodeStub(self.channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.channel.close()

    def status(self, timeout: float = 1.0) -> pb.StatusResponse:
        response: pb.StatusResponse = self.stub.Status(pb.StatusRequest(), timeout=timeout)
        return response

    def get(self, key: str, stale: bool = False, timeout: float = 2.0) -> pb.GetResponse:
        """Linearizable unless `stale`; raises NotLeader when a follower cannot serve it."""
        try:
            response: pb.GetResponse = self.stub.Get(pb.GetRequest(key=key, stale=stale), timeout=timeout)
            return response
        except grpc.RpcError as error:
            raise _redirect(error) from error

    def submit(self, command: pb.SignedCommand, timeout: float = 5.0) -> pb.CommandResult:
        """Raises NotLeader when this node is a follower (with the leader it names)."""
        try:
            response: pb.CommandResult = self.stub.Submit(command, timeout=timeout)
            return response
        except grpc.RpcError as error:
            raise _redirect(error) from error


def _redirect(error: grpc.RpcError) -> Exception:
    """FAILED_PRECONDITION from a follower becomes NotLeader (with the leader its trailers name)."""
    call: Any = error
    if call.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return error
    trailers = {str(k): v for k, v in (call.trailing_metadata() or ())}
    leader = str(trailers.get(LEADER_ID_TRAILER, "0"))
    return NotLeader(int(leader) if leader.isdigit() else 0, str(trailers.get(LEADER_GRPC_TRAILER, "")))


def put_command(key: str, value: bytes) -> pb.Command:
    return pb.Command(put=pb.Put(key=key, value=value))
