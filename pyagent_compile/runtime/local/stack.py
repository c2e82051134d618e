"""A rendered local stack folder (`stacks/<swarm>/local/`), as `pyagent compile` wrote it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pyagent_compile.contracts.local_stack import LocalNodeEntry, LocalStackManifest
from pyagent_compile.diagnostics import Diagnostic

PID_FILE = "node.pid"
LOG_FILE = "node.log"
KEY_FILE = "identity.key"
MEMBERS_FILE = "members.json"


@dataclass(frozen=True)
class StackNode:
    """A node of the stack as the runtime uses it: its `local.json` entry, with its config file
    and data folder as absolute paths (a test may point `config` elsewhere)."""

    entry: LocalNodeEntry
    config: Path
    data_dir: Path

    @staticmethod
    def in_folder(entry: LocalNodeEntry, folder: Path) -> StackNode:
        return StackNode(entry, folder / entry.config_file, folder / entry.data_dir)

    @property
    def id(self) -> int:
        return self.entry.id

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def pool(self) -> str:
        return self.entry.pool

    @property
    def voter(self) -> bool:
        return self.entry.voter

    @property
    def ports(self) -> dict[str, int]:
        return self.entry.ports

    @property
    def pid_file(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def key_file(self) -> Path:
        return self.data_dir / KEY_FILE

    @property
    def grpc(self) -> str:
        return self.entry.address("grpc")

    @property
    def metrics(self) -> str:
        return self.entry.address("metrics")


@dataclass(frozen=True)
class LocalStack:
    folder: Path
    swarm: str
    nodes: tuple[StackNode, ...]

    @property
    def data_root(self) -> Path:
        return self.folder / "data"

    @property
    def members_file(self) -> Path:
        return self.data_root / MEMBERS_FILE

    def node(self, name: str) -> StackNode:
        return next(n for n in self.nodes if n.name == name)

    @property
    def voters(self) -> tuple[StackNode, ...]:
        return tuple(n for n in self.nodes if n.voter)


def load_stack(path: Path) -> tuple[LocalStack | None, Diagnostic | None]:
    folder = path.resolve()
    file = folder / "local.json"
    help_ = "run `pyagent compile` and pass the local stack folder, e.g. `pyagent up --local stacks/laptop/local`"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, Diagnostic("PA610", f"{path} is not a local stack: it has no local.json", help=help_)
    except (OSError, ValueError) as exc:
        return None, Diagnostic("PA610", f"cannot read {file}: {exc}", help=help_)
    try:
        manifest = LocalStackManifest.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return None, Diagnostic("PA610", f"{file} is not a local stack manifest: {exc}", help=help_)
    nodes = tuple(StackNode.in_folder(entry, folder) for entry in manifest.nodes)
    return LocalStack(folder, manifest.swarm, nodes), None
