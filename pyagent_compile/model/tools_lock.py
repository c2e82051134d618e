"""The tools lock: what each core's MCP servers offered when `pyagent tools lock` asked them.

`<spec-stem>.tools.lock.json` beside a spec (`tools.lock.json` inside a CUE package folder)
records, per tool server of each core, the server's name and version and, per MCP tool it
lists, the SHA-256 of its description and its input schema (with that schema's SHA-256). It is
generated like Cargo.lock, committed, and read by `compile`/`validate`, which check every `mcp`
step's method and arguments against it without starting anything. A changed server shows up
in review as a diff of this file.

Each server entry also carries the SHA-256 of the spec's declaration it was resolved from
(transport, command, url, port), so a spec whose tool servers changed since locking is noticed
(PA331) rather than checked against another server's tools.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from pyagent_compile.canonical import to_json
from pyagent_compile.model.spec import Tool

LOCK_VERSION: Literal[1] = 1
GENERATED_BY = "pyagent tools lock"
LOCK_SUFFIX = ".tools.lock.json"
PACKAGE_LOCK_NAME = "tools.lock.json"


class LockModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, alias_generator=to_camel, populate_by_name=True, defer_build=True
    )


class ServerInfo(LockModel):
    """`serverInfo` from the server's initialize (or discover) answer."""

    name: str
    version: str


class LockedTool(LockModel):
    """One MCP tool a server lists: its input schema as the server gave it, and hashes."""

    description_sha256: str
    input_schema: dict[str, Any]
    input_schema_sha256: str


class LockedServer(LockModel):
    """One tool server of one core, as declared and as it answered."""

    core: str
    tool: str = Field(description="The server's name under the core's `tools:`.")
    source: dict[str, Any] = Field(description="The declaration it was resolved from (transport, command, url, port).")
    source_sha256: str
    server: ServerInfo
    protocol_version: str
    tools: dict[str, LockedTool]


class ToolsLock(LockModel):
    lock_version: Literal[1]
    generated_by: str
    servers: list[LockedServer]

    def find(self, core: str, tool: str) -> list[LockedServer]:
        return [s for s in self.servers if s.core == core and s.tool == tool]


def canonical_sha256(value: Any) -> str:
    """SHA-256 of compact JSON with sorted keys: the same value hashes the same everywhere."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tool_source(tool: Tool) -> dict[str, Any]:
    """What identifies a declared server: everything that decides which process or URL answers."""
    source: dict[str, Any] = {"transport": tool.transport}
    if tool.command:
        source["command"] = list(tool.command)
    if tool.url is not None:
        source["url"] = tool.url
    if tool.port is not None:
        source["port"] = tool.port
    return source


def locked_tool(description: str, input_schema: dict[str, Any]) -> LockedTool:
    return LockedTool(
        description_sha256=text_sha256(description),
        input_schema=input_schema,
        input_schema_sha256=canonical_sha256(input_schema),
    )


def build_lock(servers: list[LockedServer]) -> ToolsLock:
    ordered = sorted(servers, key=lambda s: (s.core, s.tool, s.source_sha256))
    return ToolsLock(lock_version=LOCK_VERSION, generated_by=GENERATED_BY, servers=ordered)


def render_lock(lock: ToolsLock) -> str:
    """The lock file's bytes: canonical JSON (sorted keys, two-space indent, trailing newline)."""
    return to_json(lock.model_dump(by_alias=True, mode="json"))


def lock_changes(old: ToolsLock | None, new: ToolsLock) -> list[str]:
    """What differs between two locks, one line per server or tool, for people and CI logs."""
    before = {_key(s): s for s in (old.servers if old else [])}
    after = {_key(s): s for s in new.servers}
    lines = [f"removed server {key}" for key in sorted(set(before) - set(after))]
    lines += [f"added server {key}" for key in sorted(set(after) - set(before))]
    for key in sorted(set(before) & set(after)):
        lines += _server_changes(key, before[key], after[key])
    return lines


def _key(server: LockedServer) -> str:
    return f"{server.core}.{server.tool} ({server.source_sha256[:12]})"


def _server_changes(key: str, old: LockedServer, new: LockedServer) -> list[str]:
    lines = []
    if old.server != new.server:
        lines.append(f"{key}: {old.server.name} {old.server.version} -> {new.server.name} {new.server.version}")
    if old.protocol_version != new.protocol_version:
        lines.append(f"{key}: protocol {old.protocol_version} -> {new.protocol_version}")
    for name in sorted(set(old.tools) - set(new.tools)):
        lines.append(f"{key}: tool {name} removed")
    for name in sorted(set(new.tools) - set(old.tools)):
        lines.append(f"{key}: tool {name} added")
    for name in sorted(set(old.tools) & set(new.tools)):
        if old.tools[name].input_schema_sha256 != new.tools[name].input_schema_sha256:
            lines.append(f"{key}: tool {name}: input schema changed")
        if old.tools[name].description_sha256 != new.tools[name].description_sha256:
            lines.append(f"{key}: tool {name}: description changed")
    return lines
