#!/usr/bin/env bash
# Installs checkov (Bridgecrew/Prisma's IaC scanner) into its own venv, .tools/checkov-venv,
# and links .tools/bin/checkov. checkov pins many libraries that clash with the project's
# pins, so it never shares the project's .venv. Idempotent: does nothing when the pinned
# version is already installed. The policy tests cross-check our manifests with it.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
PYTHON=${PYTHON:-python3}
VENV=.tools/checkov-venv

if [ -x "$VENV/bin/checkov" ] && [ "$("$VENV/bin/python" -m pip show checkov 2>/dev/null | sed -n 's/^Version: //p')" = "$CHECKOV_VERSION" ]; then
  :
else
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip==25.3
  "$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION"
fi
mkdir -p .tools/bin
ln -sfn "../checkov-venv/bin/checkov" .tools/bin/checkov
