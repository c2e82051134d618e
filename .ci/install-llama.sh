#!/usr/bin/env bash
# Install llama.cpp's OpenAI-compatible server (llama-cpp-python[server], built from its sdist
# by pip with cmake) and the `gguf` writer into a venv linked at $REPO/.tools/llama-venv, for
# pyagent-model's tests against a real inference server (native/crates/pyagent-model/tests/).
# Idempotent and cached by version: does nothing when the pinned versions are already there.
# The build compiles llama.cpp: ~15-25 minutes on 2 cores the first time.
#
#   .ci/install-llama.sh          # then the tests find .tools/llama-venv/bin/python
#   PYAGENT_SKIP_LLAMA=1 ...      # skip (the crate's real-server tests then skip, saying why)
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="0.3.36"
GGUF_VERSION="0.19.0"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LINK="$REPO/.tools/llama-venv"
# The venv lives outside the checkout, one per version, so that a fresh clone (CI clones anew
# each run) links to the one built before instead of compiling llama.cpp again.
CACHE="${PYAGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyagent}"
VENV="$CACHE/llama-venv-$LLAMA_CPP_PYTHON_VERSION-gguf-$GGUF_VERSION"
STAMP="$VENV/.pyagent-llama-ok"

if [ "${PYAGENT_SKIP_LLAMA:-}" = "1" ]; then
    echo "PYAGENT_SKIP_LLAMA=1: not installing llama-cpp-python (real-server model tests skip)" >&2
    exit 0
fi
link_venv() {
    mkdir -p "$REPO/.tools"
    # An older layout put the venv itself there: replace it by the link.
    if [ -d "$LINK" ] && [ ! -L "$LINK" ]; then rm -rf "$LINK"; fi
    ln -sfn "$VENV" "$LINK"
}
if [ -e "$STAMP" ] && "$VENV/bin/python" -c "import llama_cpp.server, gguf" 2>/dev/null; then
    link_venv
    echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION and gguf $GGUF_VERSION already in $VENV"
    exit 0
fi
for tool in cmake cc c++; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-llama.sh: $tool is needed to build llama.cpp (apt-get install cmake build-essential)," >&2
        echo "  or set PYAGENT_SKIP_LLAMA=1 to go on without the real-server model tests." >&2
        exit 1
    fi
done
PYTHON=${PYTHON:-python3}
mkdir -p "$CACHE"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION into $VENV (compiles llama.cpp; slow)"
# Only the text library and the Python server: no multimodal (mtmd/llava) library, no HTTPS
# (the server is reached on loopback), no native -march so the build runs on any x86-64 CI host.
export CMAKE_ARGS="${CMAKE_ARGS:-} -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
"$VENV/bin/python" -m pip install --quiet --no-binary llama-cpp-python \
    "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" "gguf==$GGUF_VERSION"
touch "$STAMP"
link_venv
