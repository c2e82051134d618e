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

# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

pyagent_install_prometheus() {
    if [ "${PYAGENT_SKIP_PROMETHEUS:-}" = "1" ] || command -v prometheus >/dev/null 2>&1; then
        return 0
    fi
    pyagent_apt_install install-prometheus prometheus || return 1
    command -v prometheus >/dev/null 2>&1 || return 0
    local sudo=""
    [ "$(id -u)" = "0" ] || sudo="sudo -n"
    # The package enables a system service; the tests start their own servers.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
    command -v prometheus >/dev/null 2>&1
}

pyagent_install_prometheus
