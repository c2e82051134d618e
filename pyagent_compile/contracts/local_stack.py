"""`local.json`: the nodes of a local stack, as `pyagent compile` writes them and `pyagent up`,
`status` and `down` read them (apiVersion `pyagent.dev/local/v1alpha1`, docs/local-and-raft.md).

Paths in it are relative to the stack folder, so the file is the same on every machine; each
node's config file and data folder follow from its name, and the reader refuses a file where
they do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCAL_API = "pyagent.dev/local/v1alpha1"
LOOPBACK = "127.0.0.1"
DATA_DIR = "data"


@dataclass(frozen=True)
class LocalNodeEntry:
    id: int  # Raft node id, 1-based and stable: pools sorted by name, then ordinal
    name: str  # <pool>-<ordinal>, like the StatefulSet's pod names without the swarm prefix
    pool: str
    voter: bool
    ports: dict[str, int]  # raft, grpc, metrics, mesh

    @property
    def data_dir(self) -> str:
        return f"{DATA_DIR}/{self.name}"

    @property
    def config_file(self) -> str:
        return f"nodes/{self.name}.json"

    def address(self, port: str) -> str:
        return f"{LOOPBACK}:{self.ports[port]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "pool": self.pool,
            "voter": self.voter,
            "config": self.config_file,
            "dataDir": self.data_dir,
            "ports": dict(sorted(self.ports.items())),
        }

    @staticmethod
    def from_json(raw: dict[str, Any]) -> LocalNodeEntry:
        """Raises KeyError, TypeError or ValueError on a document that is not a node entry."""
        entry = LocalNodeEntry(
            int(raw["id"]),
            str(raw["name"]),
            str(raw["pool"]),
            bool(raw["voter"]),
            {str(k): int(v) for k, v in raw["ports"].items()},
        )
        for key, derived in (("config", entry.config_file), ("dataDir", entry.data_dir)):
            if raw[key] != derived:
                raise ValueError(f"node {entry.name}: {key} is {raw[key]!r}, expected {derived!r}")
        return entry


@dataclass(frozen=True)
class LocalStackManifest:
    swarm: str
    source_environment: str  # "dev", or "default" for the base spec
    nodes: tuple[LocalNodeEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "apiVersion": LOCAL_API,
            "swarm": self.swarm,
            "sourceEnvironment": self.source_environment,
            "nodes": [n.to_json() for n in self.nodes],
        }

    @staticmethod
    def from_json(raw: dict[str, Any]) -> LocalStackManifest:
        """Raises KeyError, TypeError or ValueError on a document that is not a local stack."""
        if raw["apiVersion"] != LOCAL_API:
            raise ValueError(f"apiVersion {raw['apiVersion']!r}, expected {LOCAL_API!r}")
        nodes = tuple(LocalNodeEntry.from_json(n) for n in raw["nodes"])
        return LocalStackManifest(str(raw["swarm"]), str(raw["sourceEnvironment"]), nodes)
