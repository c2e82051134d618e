"""A small MCP server over streamable HTTP, built with the official SDK, for tests/test_tools_lock.py.

It binds 127.0.0.1 port 0, prints `port <N>` once it listens, and serves until killed. Run it
with the Python of .tools/mcp-venv (which has the SDK and uvicorn).
"""

from __future__ import annotations

import asyncio
import socket
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer(name="test-search", version="1.2.3")


@server.tool()
def lookup(query: str, limit: int = 5) -> str:
    """Search the test index."""
    return f"{limit} results for {query}"


async def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    http = uvicorn.Server(config)
    task = asyncio.create_task(http.serve(sockets=[sock]))
    while not http.started:
        await asyncio.sleep(0.01)
    print(f"port {sock.getsockname()[1]}", flush=True)
    await task


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
