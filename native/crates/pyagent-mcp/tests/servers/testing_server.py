"""An MCP server for pyagent-mcp's fault tests, on the official Python SDK (mcp 2.x).

Usage: python testing_server.py TOKEN. TOKEN is only there to be found in the process list.

Tools: `echo` answers; `hold` starts a child process `sleep MARKER` and waits for it (a call
that never ends, with a descendant the test can look for); `crash` kills the server mid-call.
"""

import os
import subprocess

from mcp.server.mcpserver import MCPServer

server = MCPServer("pyagent-mcp-testing")


@server.tool()
def echo(value: str) -> str:
    return value


@server.tool()
def hold(marker: int) -> str:
    subprocess.run(["sleep", str(marker)], check=False)
    return "held"


@server.tool()
def crash() -> str:
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
