"""The latency histogram and the per-version counts, by value."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from proxy.analysis import Histogram, VersionCounter, VersionWindow
from proxy.analysis.counts import CountsError
from proxy.analysis.histogram import BUCKETS, EDGES_S, HistogramError, bucket_bounds, bucket_index


def test_edges_are_half_a_millisecond_times_1_25_to_the_i_up_past_60_s() -> None:
    assert EDGES_S[0] == 0.0005
    assert len(EDGES_S) == 54 and BUCKETS == 55
    assert all(math.isclose(b / a, 1.25) for a, b in itertools.pairwise(EDGES_S))
    assert EDGES_S[-2] < 60.0 <= EDGES_S[-1]
    assert math.isclose(EDGES_S[-1], 68.4, rel_tol=1e-3)


def test_a_latency_lands_in_the_bucket_whose_bounds_hold_it() -> None:
    assert bucket_index(0.0) == 0
    assert bucket_index(-0.01) == 0  # a clock step never raises on the data path
    assert bucket_index(0.0004999) == 0
    assert bucket_index(0.0005) == 1  # an edge belongs to the bucket above it
    assert bucket_index(1e9) == BUCKETS - 1
    rng = random.Random(5)
    for _ in range(2000):
        latency = math.exp(rng.uniform(math.log(1e-5), math.log(100.0)))
        low, high = bucket_bounds(bucket_index(latency))
        assert low <= latency and (latency < high or high == low)


def test_bucket_bounds_refuses_an_index_outside_the_buckets() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.54"):
        bucket_bounds(55)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
@pytest.mark.parametrize("median_s", [0.002, 0.1, 3.0])
def test_quantiles_of_a_lognormal_are_within_one_bucket(q: float, median_s: float) -> None:
    rng = random.Random(11)
    samples = sorted(rng.lognormvariate(math.log(median_s), 0.8) for _ in range(20_000))
    exact = samples[int(q * len(samples))]
    estimate = Histogram.of(samples).quantile(q)
    assert estimate is not None
    # One bucket is 25% wide: the estimate is within a factor 1.25 of the sample quantile.
    assert exact / 1.25 <= estimate <= exact * 1.25, (exact, estimate)


def test_quantiles_of_a_uniform_within_one_bucket_interpolate_linearly() -> None:
    low, high = bucket_bounds(20)
    histogram = Histogram.of(low + (high - low) * (i + 0.5) / 1000 for i in range(1000))
    assert histogram.counts[20] == 1000
    assert histogram.quantile(0.5) == pytest.approx(low + (high - low) * 0.5)
    assert histogram.quantile(0.9) == pytest.approx(low + (high - low) * 0.9)


def test_an_empty_histogram_has_no_quantile() -> None:
    assert Histogram().count == 0
    assert Histogram().quantile(0.5) is None


def test_the_last_bucket_reads_as_its_lower_edge() -> None:
    assert Histogram.of([100.0, 200.0]).quantile(0.99) == EDGES_S[-1]


def test_merge_adds_counts_and_is_associative_and_commutative() -> None:
    rng = random.Random(2)
    a, b, c = (Histogram.of(rng.expovariate(10) for _ in range(500)) for _ in range(3))
    assert (a + b) + c == a + (b + c) == c.merge(b).merge(a)
    assert (a + b + c).count == 1500
    assert (a + Histogram()) == a


def test_sparse_form_round_trips_through_json_and_leaves_zeros_out() -> None:
    histogram = Histogram.of([0.0001, 0.003, 0.003, 0.2, 99.0])
    sparse = histogram.to_sparse()
    assert sum(sparse.values()) == 5 and len(sparse) == 4
    # JSON (and a Redis hash) turns the keys into strings: from_sparse takes them back.
    assert Histogram.from_sparse(json.loads(json.dumps(sparse))) == histogram


@pytest.mark.parametrize(
    ("sparse", "message"),
    [({"55": 1}, "outside"), ({"x": 1}, "not two integers"), ({"3": -1}, "negative")],
)
def test_a_bad_sparse_form_is_refused_with_a_message(sparse: dict[str, int], message: str) -> None:
    with pytest.raises(HistogramError, match=message):
        Histogram.from_sparse(sparse)


def test_a_histogram_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(HistogramError, match="55 buckets"):
        Histogram((1, 2, 3))


def test_count_above_splits_the_cut_bucket_in_proportion() -> None:
    low, high = bucket_bounds(30)
    histogram = Histogram.of([low + (high - low) * 0.5] * 10 + [50.0] * 5)
    assert histogram.count_above(0.0) == 15
    assert histogram.count_above(low + (high - low) * 0.25) == pytest.approx(5 + 7.5)
    assert histogram.count_above(high) == 5


def test_the_counter_hands_over_a_window_and_starts_again() -> None:
    counter = VersionCounter()
    for status, latency in [(200, 0.01), (204, 0.02), (503, 0.5), (101, 0.001), (302, 0.01), (404, 0.01)]:
        counter.request()
        counter.response(status, latency)
    counter.request()
    counter.upstream_error("timeout")
    counter.request()
    counter.upstream_error("connect")
    window = counter.take()
    assert window.requests == 8
    assert window.responses == (1, 2, 1, 1, 1)
    assert window.upstream_errors == (1, 0, 1)
    assert window.errors == 3  # the 503 and the two requests that got no answer
    assert window.error_rate == 3 / 8
    assert window.latency.count == 6
    assert counter.take() == VersionWindow()


def test_a_window_round_trips_through_its_dict_and_merges() -> None:
    window = VersionWindow(10, (0, 7, 0, 1, 1), (1, 0, 0), Histogram.of([0.01] * 9))
    assert VersionWindow.from_dict(json.loads(json.dumps(window.to_dict()))) == window
    merged = window + window
    assert merged.requests == 20 and merged.errors == 4 and merged.latency.count == 18


def test_a_bad_window_dict_is_refused_with_a_message() -> None:
    with pytest.raises(CountsError, match="not an integer"):
        VersionWindow.from_dict({"requests": "many"})
    with pytest.raises(CountsError, match="expected a mapping"):
        VersionWindow.from_dict({"responses": [1, 2]})
    with pytest.raises(CountsError, match="negative"):
        VersionWindow(-1)


def test_an_empty_window_has_no_error_rate() -> None:
    assert VersionWindow().error_rate is None
