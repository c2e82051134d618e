#!/usr/bin/env bash
# Install the pinned `cue` CLI (and pyagent's `cuepos` helper, built against the same
# cuelang.org/go module) into $REPO/.tools/bin. Idempotent: does nothing when the pinned
# versions are already there. Needs Go >= 1.23 and the Go module proxy to install.
#
#   .ci/install-cue.sh            # then: export PATH="$REPO/.tools/bin:$PATH"
#   PYAGENT_SKIP_CUE=1 ...        # skip (YAML specs work; .cue specs report PA125)
set -euo pipefail

CUE_VERSION="v0.17.1" # keep in step with specs/cuepos/go.mod and pyagent_compile/load/cue.py

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.tools/bin"

if [ "${PYAGENT_SKIP_CUE:-}" = "1" ]; then
    echo "PYAGENT_SKIP_CUE=1: not installing cue (.cue specs will report PA125; YAML works)" >&2
    exit 0
fi

have_cue="$("$BIN/cue" version 2>/dev/null | sed -n 's/^cue version //p' || true)"
stamp="$BIN/.cuepos-$CUE_VERSION-$(cat "$REPO/specs/cuepos/go.mod" "$REPO/specs/cuepos/go.sum" \
    "$REPO/specs/cuepos/main.go" | sha256sum | cut -c1-16)"
need_cue=1; [ "$have_cue" = "$CUE_VERSION" ] && need_cue=0
need_cuepos=1; [ -x "$BIN/cuepos" ] && [ -e "$stamp" ] && need_cuepos=0

if [ "$need_cue$need_cuepos" = "00" ]; then
    echo "cue $CUE_VERSION and cuepos already in $BIN"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "install-cue.sh: Go (>= 1.23) is needed to install cue $CUE_VERSION and cuepos." >&2
    echo "  Install Go, or set PYAGENT_SKIP_CUE=1 to go on without CUE support (YAML specs work)." >&2
    exit 1
fi
mkdir -p "$BIN"
export GOBIN="$BIN" GOFLAGS="${GOFLAGS:-} -mod=mod"
if [ "$need_cue" = 1 ]; then
    echo "installing cue $CUE_VERSION into $BIN"
    go install "cuelang.org/go/cmd/cue@$CUE_VERSION"
fi
if [ "$need_cuepos" = 1 ]; then
    # cuepos reports the source position of every value (cue export reports none).
    echo "building cuepos into $BIN"
    (cd "$REPO/specs/cuepos" && go install .)
    rm -f "$BIN"/.cuepos-*
    touch "$stamp"
fi
