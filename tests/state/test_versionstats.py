"""VersionStatsStore against a real redis-server: buckets add up across writers, a batch
is added once however often it is sent, windows read whole buckets, releases come from
the deploy history."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from state import DeployRecord, DeployStore, InvalidValue, KeySpace, VersionStatsStore, connect

# 5 s into a 10 s bucket of today: buckets expire a retention after they end.
NOW = time.time() // 10 * 10 + 5


@pytest.fixture
async def stats(redis_url: str) -> AsyncIterator[VersionStatsStore]:
    client = connect(redis_url)
    yield VersionStatsStore(client, KeySpace(), bucket_s=10, retention_s=3600)
    await client.aclose()


async def test_two_writers_add_up_in_one_bucket(stats: VersionStatsStore) -> None:
    bucket = stats.bucket_of(NOW)
    assert bucket == NOW - 5
    await stats.add("proxy-a", "a1", {bucket: {("production", "abc"): {"requests": 3, "status.2xx": 3}}})
    await stats.add("proxy-b", "b1", {bucket: {("production", "abc"): {"requests": 2, "status.5xx": 1}}})
    await stats.add("proxy-b", "b2", {bucket: {("staging", "def"): {"requests": 1, "latency.17": 1}}})

    span = await stats.read(NOW - 5, NOW + 1)

    assert (span.start, span.end) == (bucket, bucket + 10)
    assert span.buckets == {
        bucket: {
            ("production", "abc"): {"requests": 5, "status.2xx": 3, "status.5xx": 1},
            ("staging", "def"): {"requests": 1, "latency.17": 1},
        }
    }


async def test_a_batch_sent_twice_is_added_once(stats: VersionStatsStore) -> None:
    bucket = stats.bucket_of(NOW)
    batch = {bucket: {("staging", "abc"): {"requests": 7}}}
    assert await stats.add("proxy-a", "same-id", batch) is True
    # The reply was lost, say, and the proxy sends the batch again under its id.
    assert await stats.add("proxy-a", "same-id", batch) is False
    assert await stats.add("proxy-a", "next-id", batch) is True

    span = await stats.read(NOW, NOW + 1)

    assert span.buckets[bucket][("staging", "abc")] == {"requests": 14}


async def test_a_batch_spans_buckets_and_each_expires_after_the_retention(stats: VersionStatsStore) -> None:
    now = time.time()
    old, new = stats.bucket_of(now - 20), stats.bucket_of(now)
    await stats.add(
        "p", "x", {old: {("production", "r"): {"requests": 1}}, new: {("production", "r"): {"requests": 2}}}
    )

    span = await stats.read(now - 25, now)

    assert {b: c[("production", "r")]["requests"] for b, c in span.buckets.items()} == {old: 1, new: 2}
    ttl = await stats.redis.ttl(stats.keys.version_stats(new))
    assert new + 10 + 3600 - now - 2 <= ttl <= new + 10 + 3600 - now + 1


async def test_a_window_covers_whole_buckets(stats: VersionStatsStore) -> None:
    start = stats.bucket_of(NOW)
    for b in (start - 10, start, start + 10, start + 20):
        await stats.add("p", str(b), {b: {("production", "r"): {"requests": 1}}})

    # [start + 1, start + 20): the bucket at start and the one at start + 10; start + 20 is excluded.
    span = await stats.read(start + 1, start + 20)

    assert (span.start, span.end) == (start, start + 20)
    assert sorted(span.buckets) == [start, start + 10]


async def test_hand_written_fields_that_do_not_parse_are_left_out(stats: VersionStatsStore) -> None:
    bucket = stats.bucket_of(NOW)
    key = stats.keys.version_stats(bucket)
    await stats.redis.hset(
        key, mapping={"production:r:requests": "4", "nonsense": "1", "staging:r:requests": "x"}
    )

    span = await stats.read(NOW, NOW + 1)

    assert span.buckets == {bucket: {("production", "r"): {"requests": 4}}}


@pytest.mark.parametrize(
    ("start", "end"),
    [(10.0, 10.0), (20.0, 10.0), (float("nan"), 10.0), (0.0, 10_000.0)],
)
async def test_a_bad_window_is_refused(stats: VersionStatsStore, start: float, end: float) -> None:
    with pytest.raises(InvalidValue, match="stats window"):
        await stats.read(start, end)


async def test_bad_labels_are_refused_before_anything_is_written(stats: VersionStatsStore) -> None:
    bucket = stats.bucket_of(NOW)
    with pytest.raises(InvalidValue, match="release"):
        await stats.add("p", "1", {bucket: {("production", "a:b"): {"requests": 1}}})
    with pytest.raises(InvalidValue, match="counter name"):
        await stats.add("p", "2", {bucket: {("production", "abc"): {"Requests!": 1}}})
    assert await stats.redis.exists(stats.keys.version_stats(bucket)) == 0


def test_settings_that_make_no_buckets_are_refused() -> None:
    client = connect("redis://127.0.0.1:1/0")
    with pytest.raises(InvalidValue, match="bucket_s"):
        VersionStatsStore(client, bucket_s=60, retention_s=10)


async def test_releases_come_from_the_latest_successful_deploy(stats: VersionStatsStore) -> None:
    assert await stats.releases() == {"production": "unknown", "staging": "unknown"}
    deploys = DeployStore(stats.redis, stats.keys)
    await deploys.record(DeployRecord("staging", "deploy", "a" * 40, "succeeded", "hook", 1.0))
    await deploys.record(DeployRecord("staging", "deploy", "b" * 40, "failed", "hook", 2.0))

    assert await stats.releases() == {"production": "unknown", "staging": "a" * 40}
