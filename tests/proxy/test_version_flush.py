"""The once-a-second flush of per-version counters and the reader the rollout controller
calls, against a real redis-server: deltas add up, a failed flush loses nothing and
counts nothing twice, a window holds one release per pool."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from proxy.analysis import Histogram, VersionCounter, VersionWindow
from proxy.statsflush import StatsFlusher
from proxy.versionstats import from_flat, read_window, to_flat
from state import DeployRecord, DeployStore, KeySpace, VersionStatsStore, connect
from tests.support.redis_server import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = time.time() // 10 * 10 + 1

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def stats(redis_url: str) -> AsyncIterator[VersionStatsStore]:
    client = connect(redis_url)
    yield VersionStatsStore(client, KeySpace(), bucket_s=10, retention_s=3600)
    await client.aclose()


def counters() -> dict[str, VersionCounter]:
    return {"production": VersionCounter(), "staging": VersionCounter()}


def serve(counter: VersionCounter, n: int, status: int = 200, latency_s: float = 0.004) -> None:
    for _ in range(n):
        counter.request()
        counter.response(status, latency_s)


def test_a_window_survives_the_flat_form() -> None:
    window = VersionWindow(9, (0, 5, 1, 0, 2), (1, 0, 0), Histogram.of([0.001] * 5 + [0.3] * 3))
    assert from_flat(to_flat(window)) == window
    assert to_flat(VersionWindow()) == {}


async def test_deltas_from_two_proxies_add_up(stats: VersionStatsStore) -> None:
    clock = Clock()
    a_counts, b_counts = counters(), counters()
    a = StatsFlusher(stats, a_counts, "proxy-a", clock=clock)
    b = StatsFlusher(stats, b_counts, "proxy-b", clock=clock)
    serve(a_counts["production"], 30)
    serve(b_counts["production"], 20, status=503)
    serve(b_counts["staging"], 7)
    b_counts["staging"].request()
    b_counts["staging"].upstream_error("connect")
    await a.step()
    await b.step()
    clock.now += 10  # the next bucket
    serve(a_counts["staging"], 3, latency_s=0.2)
    await a.step()

    got = await read_window(stats, clock.now - 10, clock.now + 1)

    assert got.production.requests == 50
    assert got.production.responses == (0, 30, 0, 0, 20)
    assert got.staging.requests == 11
    assert got.staging.upstream_errors == (1, 0, 0)
    assert got.staging.latency.count == 10
    assert (got.production_release, got.staging_release) == ("unknown", "unknown")
    assert got.end - got.start == 20


async def test_a_failed_flush_loses_nothing_and_counts_nothing_twice(own_redis: RedisServer) -> None:
    client = connect(own_redis.url)
    stats = VersionStatsStore(client, bucket_s=10, retention_s=3600)
    clock = Clock()
    counts = counters()
    flusher = StatsFlusher(stats, counts, "proxy-a", clock=clock)
    try:
        serve(counts["production"], 100)
        await flusher.step()
        own_redis.stop()
        serve(counts["production"], 40)
        await flusher.step()
        clock.now += 10
        serve(counts["staging"], 5)
        await flusher.step()
        assert flusher.failures == 2
        own_redis.start()
        serve(counts["production"], 1)
        await flusher.step()

        got = await read_window(stats, clock.now - 10, clock.now + 1)
        assert (got.production.requests, got.staging.requests) == (141, 5)
        assert flusher.pending is None and not flusher.fresh
        # The counts stayed in the buckets they were taken in.
        span = await stats.read(clock.now - 10, clock.now + 1)
        assert {b: c[("production", "unknown")]["requests"] for b, c in span.buckets.items()} == {
            span.start: 140,
            span.start + 10: 1,
        }
    finally:
        await client.aclose()


async def test_a_batch_applied_whose_reply_was_lost_is_not_added_again(stats: VersionStatsStore) -> None:
    clock = Clock()
    counts = counters()
    flusher = StatsFlusher(stats, counts, "proxy-a", clock=clock)
    serve(counts["staging"], 8)
    flusher.collect()
    await flusher.flush()
    # As if the reply had been lost: the same batch is still pending, and is sent again.
    batch_id = "resent"
    bucket = stats.bucket_of(clock.now)
    flusher.pending = (batch_id, {bucket: {("staging", "unknown"): {"requests": 8}}})
    await stats.add("proxy-a", batch_id, flusher.pending[1])
    await flusher.flush()

    got = await read_window(stats, clock.now - 1, clock.now + 1)
    assert got.staging.requests == 16  # the first flush and the resent batch, once each


async def test_a_window_holds_the_release_each_pool_served_last(stats: VersionStatsStore) -> None:
    clock = Clock()
    counts = counters()
    flusher = StatsFlusher(stats, counts, "proxy-a", clock=clock)
    deploys = DeployStore(stats.redis, stats.keys)
    await deploys.record(DeployRecord("staging", "deploy", "a" * 40, "succeeded", "hook", 1.0))
    await deploys.record(DeployRecord("production", "deploy", "c" * 40, "succeeded", "hook", 1.0))
    serve(counts["staging"], 50, status=500)
    await flusher.step()
    await deploys.record(DeployRecord("staging", "deploy", "b" * 40, "succeeded", "hook", 2.0))
    clock.now += 10
    await flusher.refresh_releases()
    serve(counts["staging"], 20)
    await flusher.step()

    got = await read_window(stats, clock.now - 15, clock.now + 1)

    assert got.staging_release == "b" * 40
    assert got.staging.requests == 20 and got.staging.responses[4] == 0
    # Production served nothing: its release is still named, from the deploy history.
    assert got.production_release == "c" * 40 and got.production.requests == 0
