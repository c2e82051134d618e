"""A rendered local stack folder (`stacks/<swarm>/local/`), as `pyagent compile` wrote it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.plan.local import LOCAL_API

PID_FILE = "node.pid"
LOG_FILE = "node.log"
KEY_FILE = "identity.key"
MEMBERS_FILE = "members.json"


@dataclass(frozen=True)
class StackNode:
    id: int
    name: str
    pool: str
    voter: bool
    config: Path
    data_dir: Path
    ports: dict[str, int]

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
        return f"127.0.0.1:{self.ports['grpc']}"

    @property
    def metrics(self) -> str:
        return f"127.0.0.1:{self.ports['metrics']}"


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
    manifest = folder / "local.json"
    help_ = "run `pyagent compile` and pass the local stack folder, e.g. `pyagent up --local stacks/laptop/local`"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, Diagnostic("PA610", f"{path} is not a local stack: it has no local.json", help=help_)
    except (OSError, ValueError) as exc:
        return None, Diagnostic("PA610", f"cannot read {manifest}: {exc}", help=help_)
    try:
        if data["apiVersion"] != LOCAL_API:
            raise ValueError(f"apiVersion {data['apiVersion']!r}, expected {LOCAL_API!r}")
        nodes = tuple(
            StackNode(
                int(n["id"]),
                str(n["name"]),
                str(n["pool"]),
                bool(n["voter"]),
                folder / str(n["config"]),
                folder / str(n["dataDir"]),
                {str(k): int(v) for k, v in n["ports"].items()},
            )
            for n in data["nodes"]
        )
        return LocalStack(folder, str(data["swarm"]), nodes), None
    except (KeyError, TypeError, ValueError) as exc:
        return None, Diagnostic("PA610", f"{manifest} is not a local stack manifest: {exc}", help=help_)
