"""The test cluster the end-to-end tests share (tests/e2e/cluster, docs/cluster.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.cluster import down, layout, up
from tests.e2e.cluster.layout import Paths


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    """The running cluster of `make cluster-up` ($PYAGENT_CLUSTER_STATE, else .tools/cluster-state),
    left up; otherwise one brought up for the module and brought down after it, with nothing left."""
    running = Paths(layout.state_dir())
    if down.is_up(running):
        yield running
        return
    paths = Paths(tmp_path_factory.mktemp("cluster"))
    try:
        up.up(paths)
        yield paths
    finally:
        left = down.down(paths)
        assert left == [], f"down left: {left}"
