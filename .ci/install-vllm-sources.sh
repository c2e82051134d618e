#!/usr/bin/env bash
# Fetch vLLM's sdist (pinned, sha256-checked) and cache its block-pool sources under
# .bench-cache/ for the KV_v2 differential tests and benchmark. Quick when cached.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=.venv/bin/python bash benchmarks/fetch_vllm.sh
