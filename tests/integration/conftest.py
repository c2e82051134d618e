"""Fixtures for tests with real pyagent-node processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import harness


@pytest.fixture(scope="session")
def daemon() -> Path:
    """The node daemon; built with cargo if needed. Skipped, with the reason, only when it cannot be built."""
    path, reason = harness.daemon_or_reason()
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def netns_ok() -> None:
    reason = harness.netns_reason()
    if reason:
        pytest.skip(reason)


def _cluster(tmp_path: Path, daemon: Path, prefix: str, voters: int) -> Iterator[harness.Cluster]:
    stack = harness.compile_local(tmp_path, harness.unique_name(prefix, voters), voters)
    with harness.running(stack, daemon) as cluster:
        yield cluster


@pytest.fixture
def cluster3(tmp_path: Path, daemon: Path) -> Iterator[harness.Cluster]:
    yield from _cluster(tmp_path, daemon, "it3", 3)


@pytest.fixture
def cluster5(tmp_path: Path, daemon: Path) -> Iterator[harness.Cluster]:
    yield from _cluster(tmp_path, daemon, "it5", 5)
