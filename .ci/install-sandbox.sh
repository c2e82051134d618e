#!/usr/bin/env bash
# Installs bubblewrap (`bwrap`), which pyagent-sandbox (native/crates/pyagent-sandbox) runs
# sandbox steps in, and which its tests need. Idempotent and quiet: does nothing when bwrap is
# on PATH; runs `apt-get update` only when the package lists do not know bubblewrap (a fresh
# container) or the install fails on stale lists. Safe to run or to source (no `exit`).
#
#   .ci/install-sandbox.sh
#   PYAGENT_SKIP_SANDBOX=1 ...   # skip (the sandbox tests then fail, saying bwrap is missing)

pyagent_install_sandbox() {
    if [ "${PYAGENT_SKIP_SANDBOX:-}" = "1" ] || command -v bwrap >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(uname -s)" != "Linux" ]; then
        echo "install-sandbox: bubblewrap is Linux-only; the sandbox runs on Linux nodes" >&2
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "install-sandbox: bwrap is missing and installing it needs root: apt-get install bubblewrap" >&2
            return 0
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-sandbox: bwrap is missing and there is no apt-get: install bubblewrap with the system's package manager" >&2
        return 1
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0)
    if ! apt-cache show bubblewrap >/dev/null 2>&1; then
        $sudo "${apt[@]}" update >/dev/null
    fi
    if ! $sudo "${apt[@]}" install -y --no-install-recommends bubblewrap >/dev/null; then
        $sudo "${apt[@]}" update >/dev/null
        $sudo "${apt[@]}" install -y --no-install-recommends bubblewrap >/dev/null || return 1
    fi
    command -v bwrap >/dev/null 2>&1
}

pyagent_install_sandbox
