#!/usr/bin/env bash
# Build pyagent's minimal OpenTelemetry Collector (native/otelcol: otlp receiver, batch processor,
# file and debug exporters) into $REPO/.tools/bin/pyagent-otelcol. Tests and local runs use it to
# receive the node daemon's OTLP traces (Debian has no collector package; images cannot be pulled).
# Idempotent: rebuilds only when native/otelcol's go.mod, go.sum or *.go change. Needs Go >= 1.26
# and the Go module proxy (or a warm module cache) to build.
#
#   .ci/install-otelcol.sh        # then: export PATH="$REPO/.tools/bin:$PATH"
#   PYAGENT_SKIP_OTELCOL=1 ...    # skip (tests that need the collector skip themselves)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.tools/bin"
SRC="$REPO/native/otelcol"

if [ "${PYAGENT_SKIP_OTELCOL:-}" = "1" ]; then
    echo "PYAGENT_SKIP_OTELCOL=1: not building pyagent-otelcol" >&2
    exit 0
fi

hash="$(cd "$SRC" && cat go.mod go.sum $(LC_ALL=C ls *.go) | sha256sum | cut -c1-16)"
stamp="$BIN/.pyagent-otelcol-$hash"
if [ -x "$BIN/pyagent-otelcol" ] && [ -e "$stamp" ]; then
    echo "pyagent-otelcol already in $BIN"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "install-otelcol.sh: Go (>= 1.26) is needed to build pyagent-otelcol from native/otelcol." >&2
    echo "  Install Go, or set PYAGENT_SKIP_OTELCOL=1 to go on without the collector." >&2
    exit 1
fi
mkdir -p "$BIN"
echo "building pyagent-otelcol into $BIN (a cold build takes a few minutes)"
# As ocb builds: -trimpath, symbols stripped. go.sum is complete, so -mod=readonly.
(cd "$SRC" && go build -mod=readonly -trimpath -ldflags="-s -w" -o "$BIN/pyagent-otelcol.tmp" .)
mv -f "$BIN/pyagent-otelcol.tmp" "$BIN/pyagent-otelcol"
rm -f "$BIN"/.pyagent-otelcol-*
touch "$stamp"
