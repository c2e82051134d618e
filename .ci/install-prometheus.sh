#!/usr/bin/env bash
# Installs Prometheus (Debian's `prometheus` package), which tests/integration/test_prometheus.py
# runs against a local swarm to evaluate every panel of the generated Grafana dashboard.
# Only the binary is used: the test starts its own server on a free port with a temporary
# storage folder; the package's system service is stopped if apt started it, so no daemon
# holds port 9090 on a developer's machine. Idempotent and quiet: does nothing when
# `prometheus` is on PATH; runs `apt-get update` only when the package lists do not know it or
# the install fails on stale lists. Safe to run or to source (no `exit`).
#
#   .ci/install-prometheus.sh
#   PYAGENT_SKIP_PROMETHEUS=1 ...   # skip (the Prometheus test is then skipped, saying why)

pyagent_install_prometheus() {
    if [ "${PYAGENT_SKIP_PROMETHEUS:-}" = "1" ] || command -v prometheus >/dev/null 2>&1; then
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "install-prometheus: missing, and installing needs root: apt-get install prometheus" >&2
            return 0
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-prometheus: missing, and there is no apt-get: install prometheus with the system's package manager" >&2
        return 0
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0)
    if ! apt-cache show prometheus >/dev/null 2>&1; then
        $sudo "${apt[@]}" update >/dev/null
    fi
    if ! $sudo "${apt[@]}" install -y --no-install-recommends prometheus >/dev/null; then
        $sudo "${apt[@]}" update >/dev/null
        $sudo "${apt[@]}" install -y --no-install-recommends prometheus >/dev/null || return 1
    fi
    # The package enables a system service; the tests start their own servers.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
    command -v prometheus >/dev/null 2>&1
}

pyagent_install_prometheus
