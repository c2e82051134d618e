"""The node image that `image: {build: native}` deploys, pinned by digest.

`make image` (native/image/build.py) builds the image from native/ without a Docker engine and
records its digest in native/image/pyagent-node.lock.json, committed with the sources it was built
from. The compiler only reads that record: `pyagent compile` builds nothing, needs no registry, and
renders the same reference on every machine. A test (tests/test_node_image.py) fails when the
sources recorded in the lock have changed since it was written. docs/node-image.md tells the story.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pyagent_compile import resources

LOCK_PATH = resources.NODE_IMAGE_LOCK
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class NodeImageLock:
    repository: str
    tag: str
    digest: str


@cache
def load_lock(path: Path = LOCK_PATH) -> NodeImageLock:
    raw = json.loads(path.read_text(encoding="utf-8"))
    digest = raw.get("digest")
    if not isinstance(digest, str) or not DIGEST.match(digest):
        raise ValueError(f"{path}: `digest` is not a sha256 digest: {digest!r}")
    return NodeImageLock(str(raw["repository"]), str(raw["tag"]), digest)


def pinned(repository: str) -> str:
    """`<repository>@sha256:...`: the digest names the image's content, so it holds in whatever
    registry the image is pushed to (the spec's `image.repository`)."""
    return f"{repository}@{load_lock().digest}"
