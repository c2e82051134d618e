#!/usr/bin/env bash
# Cache vLLM's block pool sources under .bench-cache/ (see fetch_vllm.py). Quick when cached.
exec "${PYTHON:-python3}" "$(dirname "$0")/fetch_vllm.py" "$@"
