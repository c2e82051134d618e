"""A venv of its own for an anchor's Python package (Ray, pyzmq), created with pip on first use
under .bench-cache/: the anchors never go into the project's .venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def ensure_venv(venv: Path, module: str, package: str, version: str) -> Path:
    """The venv's python, with `package==version` (imported as `module`) installed."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import {module}, sys; sys.exit({module}.__version__ != {version!r})"]
    if python.is_file() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    print(f"installing {package}=={version} into {venv} ...", file=sys.stderr)
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{package}=={version}"], check=True)
    return python
