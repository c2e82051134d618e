"""A scenario, `apiVersion: pyagent.dev/scenario/v1alpha1`, `kind: Scenario`: a digital twin of one
task of a manifest (docs/scenarios.md).

It gives the task's inputs, stubs that replace the world the task would touch (each `mcp` step's
tool result, each model answer of `cort` steps), and what must come out: the task's state, its
steps' states and assertions on its outputs. A spec's `verify` step names a scenario file;
`pyagent scenario run` runs every scenario of a spec on a headless local swarm.

Same conventions as the spec (model/spec.py): camelCase keys, closed and strict models, so a typo
in an expectation is an error rather than a check that silently never runs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pyagent_compile.model.spec import SpecModel
from pyagent_compile.model.types import DnsLabel, invalid

SCENARIO_API_VERSION = "pyagent.dev/scenario/v1alpha1"
SCENARIO_KIND = "Scenario"

# The input types whose `@path` values name a file to read, as for `pyagent run --input k=@path`.
TEXT_TYPES = ("string", "diff", "file", "report", "trace")

TaskState = Literal["succeeded", "failed"]
StepState = Literal["pending", "succeeded", "failed", "cancelled"]


class ScenarioMetadata(SpecModel):
    name: DnsLabel = Field(description="The scenario's name, a DNS-1123 label; names it in reports.")
    description: str = ""


class ToolStub(SpecModel):
    """One recorded tool result, replayed instead of calling the MCP server."""

    tool: str = Field(min_length=1, description="Exactly as the `mcp` step's `tool:` writes it, e.g. git.git_status.")
    result: Any = Field(description="The tool's result as the step would have returned it (any JSON).")


class ModelStub(SpecModel):
    answers: list[str] = Field(
        default_factory=list,
        description="Model answers replayed in order, one per model request of the task (`cort` steps ask "
        "1 + rounds x (alternatives + 1) times each).",
    )


class Stubs(SpecModel):
    """What the task gets instead of the outside world: a scenario never calls real servers."""

    tools: list[ToolStub] = Field(
        default_factory=list, description="Tool results, replayed in order for each tool (several calls, several)."
    )
    model: ModelStub = Field(default_factory=ModelStub)


class OutputAssertion(SpecModel):
    """One check on an output of the task: exactly one of `equals`, `contains` and `exists`."""

    output: str = Field(min_length=1, description="A name under the manifest's `outputs:`.")
    path: str = Field(
        default="",
        pattern=r"^(/.*)?$",
        description='A JSON Pointer (RFC 6901) into the output; "" (or absent) is the whole output.',
    )
    equals: Any = Field(default=None, description="The value there equals this JSON value.")
    contains: str | None = Field(default=None, description="The value there is a string containing this text.")
    exists: bool | None = Field(default=None, description="Whether there is a value there at all.")

    @model_validator(mode="after")
    def _exactly_one(self) -> OutputAssertion:
        given = [v for v in (self.equals, self.contains, self.exists) if v is not None]
        if len(given) != 1:
            raise invalid("an output assertion has exactly one of `equals`, `contains` and `exists`")
        return self


class Expect(SpecModel):
    """What the task must end as."""

    state: TaskState = Field(default="succeeded", description="The task's final state.")
    error_code: str | None = Field(
        default=None, pattern=r"^PA[0-9]{3}$", description="When failed: the code the task fails with, e.g. PA720."
    )
    steps: dict[DnsLabel, StepState] = Field(default_factory=dict, description="Step id -> its final state.")
    outputs: list[OutputAssertion] = Field(default_factory=list, description="Assertions on the task's outputs.")

    @model_validator(mode="after")
    def _code_only_when_failed(self) -> Expect:
        if self.error_code is not None and self.state != "failed":
            raise invalid("`errorCode` is only expected of a task whose `state` is failed")
        return self


class Scenario(SpecModel):
    api_version: Literal["pyagent.dev/scenario/v1alpha1"]
    kind: Literal["Scenario"]
    metadata: ScenarioMetadata
    manifest: DnsLabel = Field(description="The manifest of the spec whose task this scenario runs.")
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The task's inputs, typed as the manifest declares them; a text input written "
        "`@path` is the text of that file (relative to the scenario file).",
    )
    stubs: Stubs = Field(default_factory=Stubs)
    expect: Expect = Field(default_factory=Expect)
