"""List each declared MCP server's tools through the official MCP Python SDK (`mcp` on PyPI).

A stdio server is started from its declared command, in the spec's folder, with a clean
environment (the SDK's default: HOME, LOGNAME, PATH, SHELL, TERM, USER; nothing else leaks
into a third-party process), asked `tools/list` (every page) and stopped; an http server is
asked at its URL over streamable HTTP. Servers are asked concurrently, each under one overall
timeout. Every failure is a PA330 at the server's declaration with the last lines the server
wrote to stderr: never a traceback, and no partial answer is ever locked.

The SDK and anyio are imported lazily, only here: the compiler does not need them (PA339 says
how to install them when missing).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from pyagent_compile.diagnostics import Diagnostic, Label
from pyagent_compile.model.spec import Tool
from pyagent_compile.model.tools_lock import (
    LockedServer,
    LockedTool,
    ServerInfo,
    canonical_sha256,
    locked_tool,
    tool_source,
)

if TYPE_CHECKING:
    from mcp import Client

MAX_PAGES = 100  # tools/list pages one server may return; a server that pages forever is broken
STDERR_LINES = 8


@dataclass(frozen=True)
class ServerRequest:
    """One declared server to ask: which core declares it, the declaration, and where it is written."""

    core: str
    tool: Tool
    path: str
    where: Label | None


def resolve_servers(
    requests: list[ServerRequest], cwd: Path, timeout: float
) -> tuple[list[LockedServer], list[Diagnostic]]:
    try:
        import anyio
        import mcp  # noqa: F401  # only to know the SDK is there before starting anything
    except ImportError as error:
        return [], [
            Diagnostic(
                "PA339",
                f"the MCP Python SDK is not installed ({error.name or error})",
                help="pip install 'pyagent[tools]'",
            )
        ]
    answers: list[LockedServer | Diagnostic] = anyio.run(_resolve_all, requests, cwd, timeout)
    servers = [a for a in answers if isinstance(a, LockedServer)]
    return servers, [a for a in answers if isinstance(a, Diagnostic)]


async def _resolve_all(requests: list[ServerRequest], cwd: Path, timeout: float) -> list[LockedServer | Diagnostic]:
    import anyio

    answers: list[LockedServer | Diagnostic | None] = [None] * len(requests)

    async def ask(index: int) -> None:
        answers[index] = await _resolve_one(requests[index], cwd, timeout)

    async with anyio.create_task_group() as group:
        for index in range(len(requests)):
            group.start_soon(ask, index)
    return [a for a in answers if a is not None]


async def _resolve_one(request: ServerRequest, cwd: Path, timeout: float) -> LockedServer | Diagnostic:
    import anyio

    # The server's stderr goes to a real file (a child process needs a descriptor), shown on failure.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as handle:
        errlog = cast(TextIO, handle)
        try:
            with anyio.fail_after(timeout):
                return await _list_tools(request, cwd, errlog)
        except TimeoutError:
            return _failed(request, f"no answer within {timeout:g} s", errlog)
        except Exception as error:  # the edge to a third-party process: anything it does is a PA330
            return _failed(request, _reason(error), errlog)


async def _list_tools(request: ServerRequest, cwd: Path, errlog: TextIO) -> LockedServer:
    async with _client(request.tool, cwd, errlog) as client:
        tools: dict[str, LockedTool] = {}
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                tools[tool.name] = locked_tool(tool.description or "", dict(tool.input_schema))
            cursor = page.next_cursor
            if cursor is None:
                break
        else:
            raise RuntimeError(f"tools/list returned more than {MAX_PAGES} pages")
        info = client.server_info
        source = tool_source(request.tool)
        return LockedServer(
            core=request.core,
            tool=request.tool.name,
            source=source,
            source_sha256=canonical_sha256(source),
            server=ServerInfo(name=info.name if info else "", version=info.version if info else ""),
            protocol_version=client.protocol_version,
            tools=tools,
        )


def _client(tool: Tool, cwd: Path, errlog: TextIO) -> Client:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    if tool.transport == "stdio":
        params = StdioServerParameters(command=tool.command[0], args=tool.command[1:], cwd=cwd)
        return Client(stdio_client(params, errlog=errlog), cache=None)
    return Client(http_url(tool), cache=None)


def http_url(tool: Tool) -> str:
    """The URL to ask: the declared one, else the MCP endpoint of the port on this machine."""
    return tool.url if tool.url is not None else f"http://127.0.0.1:{tool.port}/mcp"


def _reason(error: BaseException) -> str:
    """The innermost messages of an exception (the SDK wraps failures in task-group groups)."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_reason(inner) for inner in error.exceptions))
    if isinstance(error, FileNotFoundError):
        return f"cannot start it: {error.filename or error} not found"
    if isinstance(error, OSError):
        return f"cannot start it: {error.strerror or error}"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _failed(request: ServerRequest, reason: str, errlog: TextIO) -> Diagnostic:
    errlog.seek(0)
    tail = [line.rstrip() for line in errlog.read().splitlines() if line.strip()][-STDERR_LINES:]
    shown = " ".join(request.tool.command) if request.tool.transport == "stdio" else http_url(request.tool)
    hint = "check that the command runs (`pyagent tools lock` starts it from the spec's folder)"
    if request.tool.transport == "http":
        hint = "start the server, or give its reachable `url`"
    if tail:
        hint += "\nits stderr ended with:\n  " + "\n  ".join(tail)
    return Diagnostic(
        "PA330",
        f"tool server {request.tool.name!r} of core {request.core!r} ({shown}): {reason}",
        path=request.path,
        primary=request.where,
        help=hint,
    )
