"""The dashboard's hour of points, pure: a point per bucket and version from the counts
every proxy adds, a read that replaces what it covered, the hour bounded."""

from __future__ import annotations

from typing import cast

import pytest

from proxy.analysis import Histogram, VersionWindow
from proxy.dashboard.series import Hour, pool_window
from proxy.versionstats import to_flat
from state import StatsSpan
from state.model import PoolName

BUCKET_S = 10
Counts = dict[tuple[PoolName, str], dict[str, int]]


def flat(requests: int, errors: int = 0, latencies_s: tuple[float, ...] = ()) -> dict[str, int]:
    answered = requests - errors
    window = VersionWindow(requests, (0, answered, 0, 0, errors), (0, 0, 0), Histogram.of(latencies_s))
    return to_flat(window)


def span(start: int, end: int, buckets: dict[int, dict[tuple[str, str], dict[str, int]]]) -> StatsSpan:
    """A read's result, as state/ would give it (its pools are checked there)."""
    return StatsSpan(start, end, BUCKET_S, cast(dict[int, Counts], buckets))


def test_a_bucket_is_a_point_per_version_with_rates_and_latency_every_release_summed() -> None:
    hour = Hour(BUCKET_S)
    counts: Counts = {
        ("staging", "old1"): flat(20, 2, (0.010,) * 18),
        ("staging", "new2"): flat(30, 3, (0.100,) * 27),
        ("production", "abc"): flat(5),
    }
    assert hour.update(StatsSpan(1000, 1010, BUCKET_S, {1000: counts}), now=1015.0) == {1000}
    (point,) = hour.points("staging", now=1015.0)
    assert (point.at, point.requests, point.rps) == (1000.0, 50, 5.0)
    assert point.error_rate == pytest.approx(5 / 50)
    assert point.p50_s is not None and 0.08 <= point.p50_s <= 0.11  # 27 of 45 answers took 100 ms
    assert point.p99_s is not None and 0.08 <= point.p99_s <= 0.11  # within its bucket, 25% wide
    assert pool_window(counts, "production") == VersionWindow(5, (0, 5, 0, 0, 0))
    assert pool_window(counts, "staging") is not None


def test_the_bucket_in_progress_has_its_rate_over_the_part_that_passed() -> None:
    hour = Hour(BUCKET_S)
    hour.update(span(1000, 1010, {1000: {("staging", "a"): flat(8)}}), now=1004.0)
    assert hour.points("staging", now=1004.0)[0].rps == 2.0


def test_a_read_replaces_what_it_covered_and_says_what_changed() -> None:
    hour = Hour(BUCKET_S)
    first = {1000: {("staging", "a"): flat(3)}, 1010: {("staging", "a"): flat(4)}}
    assert hour.update(span(1000, 1020, first), now=1019.0) == {1000, 1010}
    assert hour.update(span(1000, 1020, first), now=1019.5) == set()  # nothing new
    # Counts landed late in 1010, 1000 is gone (expired, or FLUSHDB); 990 lies outside the read.
    hour.update(span(990, 1000, {990: {("staging", "a"): flat(1)}}), now=1019.6)
    later = {1010: {("staging", "a"): flat(9)}}
    assert hour.update(span(1000, 1020, later), now=1020.0) == {1000, 1010}
    assert [(p.at, p.requests) for p in hour.points("staging", now=1020.0)] == [(990.0, 1), (1010.0, 9)]
    # Asked for by bucket, a bucket without the version's counts is an empty point, so a
    # page drops what it drew there.
    asked = hour.points("staging", now=1020.0, buckets={1000, 1010})
    assert [(p.at, p.requests, p.p50_s) for p in asked] == [(1000.0, 0, None), (1010.0, 9, None)]
    assert hour.points("production", now=1020.0) == []


def test_the_hour_is_bounded_and_a_span_of_it_is_whole_buckets() -> None:
    hour = Hour(BUCKET_S, span_s=60.0)
    buckets = {b: {("production", "a"): flat(1)} for b in range(0, 200, BUCKET_S)}
    hour.update(span(0, 200, buckets), now=200.0)
    assert min(hour.buckets) == 130  # 60 s and the bucket that began before them
    part = hour.span(155.0, 175.0)
    assert (part.start, part.end, sorted(part.buckets)) == (150, 180, [150, 160, 170])


def test_the_rate_is_over_the_whole_buckets_reaching_back_up_to_now() -> None:
    hour = Hour(BUCKET_S)
    counts = {b: {("staging", "a"): flat(10), ("staging", "b"): flat(5)} for b in (970, 980, 990, 1000)}
    hour.update(span(970, 1010, counts), now=1005.0)
    assert hour.rate("staging", now=1005.0, span_s=20.0) == pytest.approx(45 / 25)  # 980 .. 1005
    assert hour.rate("production", now=1005.0, span_s=20.0) == 0.0


def test_a_bucket_that_grows_after_it_ended_shows_its_new_counts() -> None:
    hour = Hour(BUCKET_S)
    hour.update(span(1000, 1010, {1000: {("staging", "a"): flat(3)}}), now=1030.0)
    assert [p.requests for p in hour.points("staging", now=1030.0)] == [3]
    # A proxy that was cut off from Redis adds its held counts late.
    assert hour.update(span(1000, 1010, {1000: {("staging", "a"): flat(7)}}), now=1031.0) == {1000}
    assert [(p.requests, p.rps) for p in hour.points("staging", now=1031.0)] == [(7, 0.7)]
