"""The judge's error rates, from seeded simulations (bench/judge_sim.py draws the windows).

Each check states its sample: the number of windows and the requests per version in
each. Seeds are fixed, so a run is repeatable; the margins below are about two
standard errors of a rate measured over that many windows, so a different seed
should pass too.
"""

from __future__ import annotations

from bench.judge_sim import Model, fail_rate
from proxy.analysis import JudgePolicy

BASELINE = Model(error_rate=0.01, median_s=0.100, sigma=0.5)  # 1% errors, p50 100 ms, p99 ~320 ms


def test_identical_versions_fail_at_most_5_percent_of_1000_windows() -> None:
    # 1,000 windows of 2,000 requests per version, the overall verdict (errors, p50, p99).
    assert fail_rate(BASELINE, BASELINE, 2000, 1000, seed=1) <= 0.05


def test_identical_versions_at_the_minimum_sample_fail_at_most_5_percent() -> None:
    assert fail_rate(BASELINE, BASELINE, 200, 1000, seed=2) <= 0.05


def test_a_2_point_error_increase_is_caught_90_percent_of_the_time_at_2000_requests() -> None:
    # 1% -> 3%, 1,000 windows of 2,000 requests per version.
    canary = Model(error_rate=0.03)
    assert fail_rate(canary, BASELINE, 2000, 1000, seed=3, metric="errors", latency=False) >= 0.90


def test_a_canary_exactly_at_the_limit_fails_at_most_the_significance_level() -> None:
    # 1% -> 1.5% is the limit (x1.5): the test's size there, with ~2 standard errors
    # (0.0095 over 1,000 windows) of room.
    canary = Model(error_rate=0.015)
    rate = fail_rate(canary, BASELINE, 2000, 1000, seed=4, metric="errors", latency=False)
    assert rate <= JudgePolicy().significance + 0.02


def test_a_canary_100_ms_slower_is_caught_90_percent_of_the_time_at_2000_requests() -> None:
    # p50 100 ms -> ~200 ms; 300 windows of 2,000 requests per version.
    slow = Model(error_rate=0.01, median_s=0.100, sigma=0.5, shift_s=0.100)
    assert fail_rate(slow, BASELINE, 2000, 300, seed=5) >= 0.90


def test_a_canary_with_twice_the_spread_is_caught_at_p99() -> None:
    # kayenta #780: same median, sigma 0.5 -> 1.0; 300 windows of 2,000 requests.
    wide = Model(error_rate=0.01, median_s=0.100, sigma=1.0)
    assert fail_rate(wide, BASELINE, 2000, 300, seed=6, metric="latency_p99") >= 0.90
