#!/usr/bin/env bash
# Installs real MCP servers from PyPI into their own venv, .tools/mcp-venv, for the tests that
# lock and call tools (`pyagent tools lock`, the node's mcp steps): mcp-server-time and
# mcp-server-git, pinned. They never share the project's .venv (each pins its own `mcp`).
# Idempotent: keyed by the pinned versions, recorded in .tools/mcp-venv/.pins.
set -euo pipefail
cd "$(dirname "$0")/.."

MCP_SERVER_TIME_VERSION=2026.10.19
MCP_SERVER_GIT_VERSION=2026.10.19
PYTHON=${PYTHON:-python3}
VENV=.tools/mcp-venv
PINS="mcp-server-time==$MCP_SERVER_TIME_VERSION mcp-server-git==$MCP_SERVER_GIT_VERSION"

if [ -x "$VENV/bin/mcp-server-time" ] && [ -x "$VENV/bin/mcp-server-git" ] && [ "$(cat "$VENV/.pins" 2>/dev/null)" = "$PINS" ]; then
  exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip==25.3
# shellcheck disable=SC2086 # PINS is a list of requirement specifiers
"$VENV/bin/python" -m pip install --quiet $PINS
echo "$PINS" >"$VENV/.pins"
