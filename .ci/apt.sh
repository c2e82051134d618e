#!/usr/bin/env bash
# Sourced by the .ci/install-*.sh scripts that take Debian packages: installs what is missing,
# quietly and idempotently. Runs `apt-get update` only when the package lists do not know a
# package (a fresh container) or the install fails on stale lists. Without root (and no
# password-less sudo) or without apt-get, it says what to install and returns 0 (the tests that
# need the packages then fail, saying so); an install that fails returns 1.
#
#   pyagent_apt_install WHO PACKAGE...

pyagent_apt_install() {
    local who="$1"
    shift
    local sudo=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "$who: missing, and installing needs root: apt-get install $*" >&2
            return 0
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$who: missing, and there is no apt-get: install $* with the system's package manager" >&2
        return 0
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0)
    if ! apt-cache show "$@" >/dev/null 2>&1; then
        $sudo "${apt[@]}" update >/dev/null
    fi
    if ! $sudo "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null; then
        $sudo "${apt[@]}" update >/dev/null
        $sudo "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null || return 1
    fi
}
