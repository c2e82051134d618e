#!/usr/bin/env bash
# Installs the real MCP servers that pyagent-mcp's tests (native/crates/pyagent-mcp) and
# benchmarks/mcp.py run, pinned, into their own venv: .tools/mcp-venv. Its own venv, not .venv,
# because the servers run inside the sandbox, which sees only the system dirs and the paths the
# caller binds read-only: the tests bind this venv, never the project's. Idempotent: does nothing
# when the pinned versions are there. Safe to run or to source (no `exit`). A failure is reported
# and does not fail the set-up (nothing else needs these servers): the pyagent-mcp tests then fail,
# saying the venv is missing.
#
#   .ci/install-mcp-servers.sh
#   PYAGENT_SKIP_MCP_SERVERS=1 ...   # skip (the pyagent-mcp tests then fail, saying so)

# The pinned servers (tests/test_tools_lock.py reads these two lines).
MCP_SERVER_TIME_VERSION=2026.10.19
MCP_SERVER_GIT_VERSION=2026.10.19

pyagent_install_mcp_servers() {
    if [ "${PYAGENT_SKIP_MCP_SERVERS:-}" = "1" ]; then
        return 0
    fi
    local root venv python pins
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="$root/.tools/mcp-venv"
    # A system interpreter (not a pyenv shim or the project's venv): the sandbox mounts /usr,
    # where the venv's python symlink must lead.
    python="${PYAGENT_MCP_PYTHON:-/usr/bin/python3}"
    pins=("mcp-server-time==$MCP_SERVER_TIME_VERSION" "mcp-server-git==$MCP_SERVER_GIT_VERSION" mcp==2.3.0)
    local stamp="$venv/.pins"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ]; then
        return 0
    fi
    if [ ! -x "$python" ]; then
        echo "install-mcp-servers: $python not found (set PYAGENT_MCP_PYTHON to a python3 under /usr)" >&2
        return 0
    fi
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" \
        || ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"; then
        echo "install-mcp-servers: could not install ${pins[*]} into $venv (python3-venv missing?)" >&2
        rm -rf "$venv"
        return 0
    fi
    echo "${pins[*]}" >"$stamp"
}

pyagent_install_mcp_servers
