"""Where pyagent finds the files it ships: the Jinja templates, the policy catalogue and the lock
of the node image.

They live at the top of the repository (`templates/`, `policies/rules.yaml`,
`native/image/pyagent-node.lock.json`), where people edit (or `make image` writes)
them, and reach the package through `pyagent_compile/_data/`, whose entries are symbolic links
to them. A built wheel holds the files themselves (maturin stores what a link points to), so an
installed pyagent and a checkout read them through the same path and neither looks outside the
package. tests/test_packaging.py checks that `_data/` mirrors the top-level files exactly and
that an installed wheel works.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DATA = PACKAGE / "_data"
POLICY_CATALOG = DATA / "policies" / "rules.yaml"
# The digest of the node image that `make image` built (pyagent_compile/plan/node_image.py).
NODE_IMAGE_LOCK = DATA / "native" / "image" / "pyagent-node.lock.json"
# The folders and files of the repository that `_data/` mirrors, relative to its root.
MIRRORED = ("templates", "policies/rules.yaml", "native/image/pyagent-node.lock.json")


def templates(kind: str) -> Path:
    """The Jinja templates of one kind of output: `stack`, `local` or `node`."""
    return DATA / "templates" / kind


def source_checkout() -> Path | None:
    """The repository this package runs from (an editable install of a checkout), else None:
    the folder above the package, when it holds the native workspace."""
    root = PACKAGE.parent
    return root if (root / "native" / "Cargo.toml").is_file() else None
