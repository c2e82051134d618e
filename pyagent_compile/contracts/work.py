"""`work.json`: the swarm's manifests and cores as its nodes run them (`pyagent.dev/work/v1alpha1`).

The compiler writes it beside the node configs (the local target: `<stack>/work.json`; Kubernetes:
key `work.json` of the manifests ConfigMap). `pyagent run` reads a manifest from it and puts it,
whole, into the task it submits, so what runs is what was submitted; a node reads it to hand
work to another core (`delegate` steps). The daemon mirrors these models with serde
(native/crates/pyagent-node/src/work/manifest.rs and executor.rs).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from pyagent_compile.contracts.node_config import Contract

WORK_API: Literal["pyagent.dev/work/v1alpha1"] = "pyagent.dev/work/v1alpha1"

ValueTypeName = Literal["string", "int", "bool", "json", "diff", "trace", "report", "verdict", "file"]


class CoreResources(Contract):
    """What one task of the core needs on its node (zero: nothing declared)."""

    cpu_millis: int = Field(ge=0)
    memory_bytes: int = Field(ge=0)
    gpu_memory_bytes: int = Field(ge=0)


class ToolServer(Contract):
    """An MCP server a core's `mcp` steps call (spec `cores.<core>.tools[]`); the daemon's
    serde mirror is `ToolServer` in native/crates/pyagent-mcp/src/server.rs."""

    name: str
    transport: Literal["stdio", "http"]
    command: list[str] = Field(description="stdio: the command that starts the server (empty for http).")
    url: str | None = Field(description="http: the server's URL.")
    port: int | None = Field(ge=1, le=65535, description="http: the port of a server run beside the node.")


class SecretKey(Contract):
    """A key of a Kubernetes Secret in the swarm's namespace."""

    name: str
    key: str


class ApiKey(Contract):
    """Where the node finds the model server's API key: the environment variable `env`. On
    Kubernetes the StatefulSet fills it from `secret` (a secretKeyRef); on the local target it is
    inherited from the shell that ran `pyagent up`. The key itself is never in a contract."""

    env: str
    file: str | None = Field(
        description="The file the key is read from first, when it exists (Kubernetes mounts the Secret's key there); "
        "else the variable `env`."
    )
    secret: SecretKey


class Model(Contract):
    """A core's model: which server to ask and with what sampling settings (null: the server's)."""

    name: str
    endpoint: str | None = Field(description="Base URL of an OpenAI-compatible server; null: a name only.")
    api_key: ApiKey | None
    temperature: float | None
    seed: int | None
    max_tokens: int | None


class Output(Contract):
    type: ValueTypeName
    # `from` is a Python keyword: the field is `source`, written as "from".
    source: str = Field(alias="from")


class Step(Contract):
    id: str
    kind: str
    after: list[str]
    inputs: dict[str, str]
    timeout_ms: int = Field(ge=1)
    retries: int = Field(ge=0)
    command: list[str] | None
    network: bool = Field(description="sandbox: whether the firewall lets the step's core reach the network.")
    image: str | None = Field(
        description="sandbox: the image the command runs in, from the node's OCI image layout (docs/tasks.md)."
    )
    core: str | None
    manifest: str | None
    params: dict[str, Any] | None = Field(description="The kind's other settings (cort rounds, mcp tool...).")


class Manifest(Contract):
    name: str
    core: str
    inputs: dict[str, ValueTypeName]
    outputs: dict[str, Output]
    steps: list[Step]


class ScenarioToolStub(Contract):
    tool: str = Field(description="As the `mcp` step's `tool:` writes it.")
    result: Any = Field(description="The result replayed for the step, any JSON.")


class ScenarioModelStub(Contract):
    answers: list[str] = Field(description="Replayed in order, one per model request of the task.")


class ScenarioStubs(Contract):
    tools: list[ScenarioToolStub] = Field(description="In file order; per tool, replayed in order.")
    model: ScenarioModelStub


class ScenarioAssertion(Contract):
    """Exactly one of `equals`, `contains` and `exists` is not null."""

    output: str
    path: str = Field(description='A JSON Pointer (RFC 6901) into the output; "" is the whole output.')
    equals: Any
    contains: str | None
    exists: bool | None


class ScenarioExpect(Contract):
    state: Literal["succeeded", "failed"]
    error_code: str | None
    steps: dict[str, str] = Field(description="Step id -> its expected final state.")
    outputs: list[ScenarioAssertion]


class Scenario(Contract):
    """A scenario (docs/scenarios.md) as a `verify` step runs it: inputs typed and `@path` inputs
    already read, so a node needs no file beside work.json."""

    name: str
    manifest: str
    inputs: dict[str, Any]
    stubs: ScenarioStubs
    expect: ScenarioExpect


class WorkFile(Contract):
    api_version: Literal["pyagent.dev/work/v1alpha1"] = WORK_API
    swarm: str
    cores: dict[str, CoreResources]
    manifests: dict[str, Manifest]
    tools: dict[str, list[ToolServer]] = Field(
        default_factory=dict, description="Each core's MCP servers, for the cores that have any."
    )
    # Beside `cores` rather than in it: a daemon that predates models reads `cores` strictly
    # (deny_unknown_fields) but ignores unknown top-level keys.
    models: dict[str, Model] = Field(description="By core, the cores that declare a model.")
    scenarios: dict[str, Scenario] = Field(
        default_factory=dict,
        description="The scenarios `verify` steps run, by their `scenario:` path as the step writes it.",
    )


def read_work_file(text: str) -> WorkFile:
    return WorkFile.model_validate(json.loads(text), strict=False)
