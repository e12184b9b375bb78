"""The judge's rules, one by one, with plain values."""

from __future__ import annotations

import json
import math

import pytest

from proxy.analysis import Histogram, JudgePolicy, Outcome, VersionWindow, judge
from proxy.analysis.exact import upper_tail, wilson_interval


def latencies(n: int, median_s: float, spread: float = 1.6) -> Histogram:
    """n latencies spread evenly in log space over [median/spread, median*spread]: a
    deterministic stand-in for a measured distribution."""
    lo, hi = math.log(median_s / spread), math.log(median_s * spread)
    return Histogram.of(math.exp(lo + (hi - lo) * (i + 0.5) / n) for i in range(n))


def version(requests: int, errors: int, median_s: float = 0.1, timed: int | None = None) -> VersionWindow:
    timed = requests if timed is None else timed
    return VersionWindow(
        requests, (0, requests - errors, 0, 0, errors), (0, 0, 0), latencies(timed, median_s)
    )


POLICY = JudgePolicy()


def test_identical_versions_pass_on_every_metric() -> None:
    verdict = judge(version(2000, 20), version(2000, 20))
    assert verdict.outcome is Outcome.PASS
    assert [m.metric for m in verdict.metrics] == ["errors", "latency_p50", "latency_p99"]
    assert all(m.outcome is Outcome.PASS for m in verdict.metrics)


@pytest.mark.parametrize("requests", [0, 1, 50, 199])
def test_below_the_minimum_sample_a_flawless_canary_is_inconclusive_never_pass(requests: int) -> None:
    verdict = judge(version(requests, 0), version(5000, 50))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert "too few" in verdict.metric("errors").reason
    assert verdict.metric("errors").canary_n == requests


def test_at_the_minimum_sample_the_canary_can_pass() -> None:
    assert judge(version(200, 0), version(5000, 50)).outcome is Outcome.PASS


def test_empty_data_on_either_side_is_inconclusive_not_a_failure() -> None:
    # argo-rollouts #1466 aborts on an empty metric result; no data is no verdict.
    for canary, baseline in [(VersionWindow(), VersionWindow()), (version(500, 5), VersionWindow())]:
        verdict = judge(canary, baseline)
        assert verdict.outcome is Outcome.INCONCLUSIVE
        assert all(m.outcome is Outcome.INCONCLUSIVE for m in verdict.metrics)


def test_requests_without_timed_responses_leave_latency_inconclusive() -> None:
    verdict = judge(version(1000, 10, timed=0), version(1000, 10))
    assert verdict.metric("errors").outcome is Outcome.PASS
    assert verdict.metric("latency_p50").outcome is Outcome.INCONCLUSIVE
    assert verdict.outcome is Outcome.INCONCLUSIVE


def test_a_catastrophic_canary_fails_at_once_below_the_minimum_sample() -> None:
    verdict = judge(version(20, 10), version(5000, 50))
    errors = verdict.metric("errors")
    assert verdict.outcome is Outcome.FAIL and errors.outcome is Outcome.FAIL
    assert "catastrophic" in errors.reason
    # ...but not before it has served the catastrophic minimum, nor below the rate.
    assert judge(version(19, 19), version(5000, 50)).outcome is Outcome.INCONCLUSIVE
    assert judge(version(20, 9), version(5000, 50)).outcome is Outcome.INCONCLUSIVE


def test_the_catastrophic_rule_follows_the_policy() -> None:
    policy = JudgePolicy(catastrophic_error_rate=0.2, catastrophic_min_requests=10)
    assert judge(version(10, 2), version(5000, 50), policy).outcome is Outcome.FAIL
    assert judge(version(9, 9), version(5000, 50), policy).outcome is Outcome.INCONCLUSIVE


def test_the_limit_is_the_stricter_of_the_absolute_and_relative_allowances() -> None:
    low = judge(version(2000, 20), version(2000, 20)).metric("errors")  # 1%: 1.5x = 1.5% < 2%
    assert low.limit == pytest.approx(0.015)
    high = judge(version(2000, 100), version(2000, 100)).metric("errors")  # 5%: +1 pt = 6% < 7.5%
    assert high.limit == pytest.approx(0.06)


def test_a_small_absolute_rise_on_a_busy_error_rate_fails_on_the_absolute_allowance() -> None:
    # 10% -> 12.5%: within 1.5x (15%), but 2.5 points over a +1 point allowance (11%).
    assert judge(version(10_000, 1250), version(10_000, 1000)).metric("errors").outcome is Outcome.FAIL
    assert judge(version(10_000, 1080), version(10_000, 1000)).metric("errors").outcome is Outcome.PASS


def test_a_doubling_of_a_rare_error_fails_on_the_relative_allowance() -> None:
    # 0.2% -> 0.5%: well within +1 point, but 2.5x production (allowed 1.5x).
    assert judge(version(50_000, 250), version(50_000, 100)).metric("errors").outcome is Outcome.FAIL
    assert judge(version(50_000, 110), version(50_000, 100)).metric("errors").outcome is Outcome.PASS


def test_the_allowances_are_relative_to_production_not_absolute_thresholds() -> None:
    # flagger #225/#739: an absolute 5% threshold on the canary alone would fail both.
    assert judge(version(2000, 160), version(2000, 160)).outcome is Outcome.PASS  # both 8%
    # ...and pass this one, which has 4x production's errors.
    assert judge(version(2000, 40), version(2000, 10)).metric("errors").outcome is Outcome.FAIL


def test_sparse_errors_are_judged_exactly_not_passed() -> None:
    # kayenta #426: a rank test passes a canary whose errors are rare but all its own.
    assert judge(version(2000, 8), version(2000, 0)).metric("errors").outcome is Outcome.FAIL
    assert judge(version(2000, 1), version(2000, 0)).metric("errors").outcome is Outcome.PASS


def test_policy_allowances_move_the_limit() -> None:
    lenient = JudgePolicy(error_allowed_increase=0.05, error_allowed_ratio=10.0)
    assert judge(version(2000, 60), version(2000, 20), lenient).metric("errors").outcome is Outcome.PASS
    assert judge(version(2000, 60), version(2000, 20)).metric("errors").outcome is Outcome.FAIL


def test_a_slower_canary_fails_at_p50_beyond_the_allowed_ratio() -> None:
    slow = judge(version(2000, 0, median_s=0.15), version(2000, 0, median_s=0.1))
    assert slow.metric("latency_p50").outcome is Outcome.FAIL
    assert slow.metric("latency_p50").statistic == pytest.approx(1.5, rel=0.05)
    assert slow.outcome is Outcome.FAIL
    # 1.1x is inside the allowed 1.25x.
    near = judge(version(2000, 0, median_s=0.11), version(2000, 0, median_s=0.1))
    assert near.metric("latency_p50").outcome is Outcome.PASS


def test_sub_millisecond_noise_passes_on_the_absolute_latency_allowance() -> None:
    # x1.7 at p50, but 0.8 ms: inside production + 5 ms, which allows more than x1.25.
    noisy = judge(version(2000, 0, median_s=0.002), version(2000, 0, median_s=0.0012))
    p50 = noisy.metric("latency_p50")
    assert p50.outcome is Outcome.PASS
    assert p50.baseline is not None and p50.limit == pytest.approx(p50.baseline + 0.005)
    # Well past the allowance it still fails: 12 ms against 1.2 ms.
    slow = judge(version(2000, 0, median_s=0.012), version(2000, 0, median_s=0.0012))
    assert slow.metric("latency_p50").outcome is Outcome.FAIL
    # With no absolute allowance the same noise fails on the ratio alone.
    strict = JudgePolicy(latency_allowed_increase_s=0)
    assert (
        judge(version(2000, 0, 0.002), version(2000, 0, 0.0012), strict).metric("latency_p50").outcome
        is Outcome.FAIL
    )


def test_a_canary_with_a_slow_tail_fails_at_p99_with_the_same_median() -> None:
    # kayenta #780: higher variance, same centre.
    tail = Histogram.of([0.1] * 1900 + [0.5] * 100)
    canary = VersionWindow(2000, (0, 2000, 0, 0, 0), (0, 0, 0), tail)
    baseline = VersionWindow(2000, (0, 2000, 0, 0, 0), (0, 0, 0), Histogram.of([0.1] * 1990 + [0.15] * 10))
    verdict = judge(canary, baseline)
    assert verdict.metric("latency_p50").outcome is Outcome.PASS
    assert verdict.metric("latency_p99").outcome is Outcome.FAIL


def test_a_faster_canary_passes() -> None:
    assert judge(version(2000, 0, median_s=0.05), version(2000, 0, median_s=0.1)).outcome is Outcome.PASS


def test_the_error_verdict_explains_itself_with_values_that_are_right() -> None:
    errors = judge(version(2000, 60), version(2000, 20)).metric("errors")
    assert errors.outcome is Outcome.FAIL
    assert errors.canary == pytest.approx(0.03) and errors.baseline == pytest.approx(0.01)
    assert errors.canary_n == errors.baseline_n == 2000
    assert errors.limit == pytest.approx(0.015)
    assert errors.canary_interval == wilson_interval(60, 2000)
    assert errors.baseline_interval == wilson_interval(20, 2000)
    allowed_odds = (0.015 / 0.985) / (0.01 / 0.99)
    assert errors.p_value == pytest.approx(upper_tail(60, 2000, 2000, 80, allowed_odds))
    assert errors.p_value is not None and errors.p_value < POLICY.significance
    assert errors.statistic == pytest.approx((60.5 * 1980.5) / (1940.5 * 20.5))
    assert "Fisher" in errors.test and f"{allowed_odds:.3g}" in errors.test
    line = errors.explain()
    assert line.startswith("errors FAIL") and "3.00%" in line and "1.00%" in line and "1.50%" in line


def test_the_latency_verdict_explains_itself() -> None:
    p50 = judge(version(2000, 0, median_s=0.15), version(2000, 0, median_s=0.1)).metric("latency_p50")
    assert p50.canary == pytest.approx(0.15, rel=0.05) and p50.baseline == pytest.approx(0.1, rel=0.05)
    assert p50.baseline is not None and p50.limit == pytest.approx(p50.baseline * 1.25)
    assert p50.canary is not None and p50.canary_interval is not None
    assert p50.canary_interval[0] <= p50.canary <= p50.canary_interval[1]
    assert p50.p_value is not None and p50.p_value < 1e-6
    assert "Mood" in p50.test and "p50" in p50.test
    assert "ms" in p50.explain()


def test_the_whole_verdict_serialises_to_json_and_one_line() -> None:
    verdict = judge(version(2000, 60), version(2000, 20))
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["outcome"] == "FAIL"
    assert [m["metric"] for m in data["metrics"]] == ["errors", "latency_p50", "latency_p99"]
    fields = {"outcome", "reason", "canary", "baseline", "limit", "canary_n", "baseline_n"}
    assert fields | {"canary_interval", "baseline_interval", "test", "statistic", "p_value"} <= set(
        data["metrics"][0]
    )
    line = verdict.explain()
    assert line.startswith("FAIL: errors FAIL") and "latency_p99 PASS" in line and "\n" not in line


def test_an_inconclusive_verdict_says_what_it_needs() -> None:
    line = judge(version(50, 0), version(5000, 50)).explain()
    assert line.startswith("INCONCLUSIVE") and "canary 50" in line and "need 200" in line


def test_more_requests_than_outcomes_or_fewer_never_break_the_table() -> None:
    # A flush can carry a request's outcome without the request: errors > requests.
    skewed = VersionWindow(300, (0, 0, 0, 0, 310), (0, 0, 0), latencies(300, 0.1))
    assert judge(skewed, version(2000, 20)).metric("errors").canary_n == 310


@pytest.mark.parametrize(
    "bad",
    [
        {"min_requests": 0},
        {"catastrophic_error_rate": 1.5},
        {"error_allowed_ratio": 0.9},
        {"error_allowed_increase": -0.1},
        {"p99_allowed_ratio": 0.5},
        {"significance": 0.7},
    ],
)
def test_a_policy_out_of_range_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        JudgePolicy(**bad)  # type: ignore[arg-type]


def test_the_exact_test_matches_fishers_by_hand() -> None:
    # 3 of 3 successes all in group 1, groups of 3: 1 / C(6, 3).
    assert upper_tail(3, 3, 3, 3) == pytest.approx(1 / 20)
    assert upper_tail(0, 10, 10, 5) == 1.0
    # With odds ratio psi: P(X = k) is proportional to C(n1, k) C(n2, m - k) psi^k.
    weights = [math.comb(4, k) * math.comb(6, 3 - k) * 2.0**k for k in range(4)]
    assert upper_tail(2, 4, 6, 3, 2.0) == pytest.approx(sum(weights[2:]) / sum(weights))
