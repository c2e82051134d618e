#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's `chromium` and `chromium-driver`), which
# tests/integration/test_dashboard.py drives to load `pyagent dashboard` against a running swarm
# and take the screenshots in docs/. Idempotent and quiet: does nothing when `chromedriver` and
# `chromium` are on PATH; runs `apt-get update` only when the package lists do not know them or
# the install fails on stale lists. Safe to run or to source (no `exit`).
#
#   .ci/install-chromium.sh
#   PYAGENT_SKIP_CHROMIUM=1 ...   # skip (the browser test is then skipped, saying why)

# shellcheck source=apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

pyagent_install_chromium() {
    if [ "${PYAGENT_SKIP_CHROMIUM:-}" = "1" ]; then
        return 0
    fi
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
        return 0
    fi
    pyagent_apt_install install-chromium chromium chromium-driver
}

pyagent_install_chromium
