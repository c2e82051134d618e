"""What rules read and return. Rules are pure functions over plain Kubernetes objects (dicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyagent_compile.load.document import PathT

DEFAULT_INTERNAL_PORTS = frozenset({7946, 7100})


@dataclass(frozen=True)
class ObjectContext:
    """What an object-level rule may know beyond the object: the same in the CLI and CrossGuard.

    `internal_ports` are the mesh and Raft ports (only swarm pods may reach them);
    `jurisdictions` are where personal data may be stored (empty: the spec sets no limit).
    CrossGuard gets these values from the pack's configuration (`pyagent policy pack-config`)."""

    tier: str = "prod"
    internal_ports: frozenset[int] = DEFAULT_INTERNAL_PORTS
    jurisdictions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Violation:
    """One rule failing on one object (or, for spec rules, one place in the spec).

    `field` is where in the object (`spec.template.spec.containers[0].image`); `subpath` is
    appended to the object's spec source to point at the exact spec value, and `spec_path`,
    when set, replaces the source entirely (e.g. `image.ref` for a StatefulSet's image)."""

    rule: str
    message: str
    field: str = ""
    subpath: PathT = ()
    spec_path: PathT | None = None


@dataclass(frozen=True)
class ObjectRef:
    """A rendered object with its logical name and the spec path it came from."""

    body: dict[str, Any]
    logical_name: str
    source: PathT = ()
    extra: dict[str, Any] = field(default_factory=dict)


def normalise(value: Any) -> Any:
    """Pulumi's mocks and engine hand over numbers as floats: 7100.0 -> 7100, recursively."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value
