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

# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

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
    pyagent_apt_install install-sandbox "${wanted[@]}" || return 1
    command -v bwrap >/dev/null 2>&1
}

pyagent_install_sandbox
