"""The dashboard's points, pure: quantiles from buckets, deltas across a restart, steps."""

from __future__ import annotations

import pytest

from proxy.dashboard.series import Counters, History, delta, quantile, served_share

BOUNDS = (0.01, 0.1, 1.0)


def counters(requests: int, errors: int = 0, latency: tuple[int, ...] = (0, 0, 0, 0)) -> Counters:
    return Counters(requests, errors, BOUNDS, latency)


def test_a_quantile_is_interpolated_within_its_bucket() -> None:
    assert quantile(BOUNDS, (0, 10, 0, 0), 0.5) == pytest.approx(0.055)
    assert quantile(BOUNDS, (10, 0, 0, 0), 0.99) == pytest.approx(0.0099)
    assert quantile(BOUNDS, (99, 0, 1, 0), 0.99) == pytest.approx(0.01)
    assert quantile(BOUNDS, (99, 0, 0, 1), 0.999) == 1.0  # the overflow bucket reads as the last bound
    assert quantile(BOUNDS, (0, 0, 0, 0), 0.5) is None


def test_a_delta_is_what_happened_between_readings_and_a_drop_is_a_restart() -> None:
    before = counters(10, 1, (5, 5, 0, 0))
    now = counters(25, 3, (10, 12, 3, 0))
    assert delta(now, before) == counters(15, 2, (5, 7, 3, 0))
    assert delta(counters(4, 0, (4, 0, 0, 0)), before) == counters(4, 0, (4, 0, 0, 0))
    assert delta(now, None) == now


def test_a_step_closes_a_point_per_version_with_rates_and_latency() -> None:
    history = History(step_s=5.0, span_s=20.0)
    assert history.add(100.0, {"staging": counters(0)}) == {}
    assert history.add(103.0, {"staging": counters(30)}) == {}  # mid-step
    closed = history.add(105.0, {"staging": counters(50, 5, (0, 50, 0, 0))})
    point = closed["staging"]
    assert point.requests == 50 and point.rps == pytest.approx(10.0)
    assert point.error_rate == pytest.approx(0.1)
    assert point.p50_s == pytest.approx(0.055) and point.p99_s == pytest.approx(0.0991)


def test_a_version_without_traffic_in_a_step_gets_an_empty_point_and_the_hour_is_bounded() -> None:
    history = History(step_s=5.0, span_s=20.0)
    history.add(0.0, {"staging": counters(10)})
    for i in range(1, 10):
        history.add(5.0 * i, {"staging": counters(10)})
    points = history.points["staging"]
    assert len(points) == 4  # 20 s of 5 s steps
    assert all(p.requests == 0 and p.p50_s is None and p.error_rate is None for p in points)


def test_the_served_share_is_over_the_recent_points() -> None:
    history = History(step_s=5.0)
    history.add(0.0, {"production": counters(0), "staging": counters(0)})
    history.add(5.0, {"production": counters(70), "staging": counters(30)})
    share = served_share(history, ("production", "staging"))
    assert share == {"production": pytest.approx(0.7), "staging": pytest.approx(0.3)}
    assert served_share(History(), ("production", "staging")) == {"production": None, "staging": None}
