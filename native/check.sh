#!/usr/bin/env bash
# Lint and test the native workspace: the gate CI runs (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
