#!/usr/bin/env bash
# Installs bubblewrap (`bwrap`), which pyagent-sandbox (native/crates/pyagent-sandbox) runs
# sandbox steps in, and what the tests of step images need: umoci (builds OCI images, as
# native/image/build.py does) and busybox-static (a static userland to put in them).
# Idempotent and quiet: does nothing when the commands are on PATH; runs `apt-get update` only
# when the package lists do not know a package (a fresh container) or the install fails on
# stale lists. Safe to run or to source (no `exit`).
#
#   .ci/install-sandbox.sh
#   PYAGENT_SKIP_SANDBOX=1 ...   # skip (the sandbox tests then fail, saying bwrap is missing)

pyagent_install_sandbox() {
    local wanted=() pair
    for pair in bwrap:bubblewrap umoci:umoci busybox:busybox-static; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || wanted+=("${pair#*:}")
    done
    if [ "${PYAGENT_SKIP_SANDBOX:-}" = "1" ] || [ "${#wanted[@]}" = 0 ]; then
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
            echo "install-sandbox: missing, and installing needs root: apt-get install ${wanted[*]}" >&2
            return 0
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-sandbox: missing, and there is no apt-get: install ${wanted[*]} with the system's package manager" >&2
        return 1
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0)
    if ! apt-cache show "${wanted[@]}" >/dev/null 2>&1; then
        $sudo "${apt[@]}" update >/dev/null
    fi
    if ! $sudo "${apt[@]}" install -y --no-install-recommends "${wanted[@]}" >/dev/null; then
        $sudo "${apt[@]}" update >/dev/null
        $sudo "${apt[@]}" install -y --no-install-recommends "${wanted[@]}" >/dev/null || return 1
    fi
    command -v bwrap >/dev/null 2>&1
}

pyagent_install_sandbox
