"""Fixtures for the state package's tests: a Sentinel-watched master and replica."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sentinel import SentinelCluster


@pytest.fixture
def sentinel_cluster() -> Iterator[SentinelCluster]:
    cluster = SentinelCluster()
    yield cluster
    cluster.cleanup()
