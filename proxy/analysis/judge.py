"""The canary judge: two versions' counts over the same window in, a verdict out.
No I/O, no clock, no Redis.

Errors: the canary fails when its error rate is significantly above the limit,
min(production + allowed increase, production x allowed ratio); both allowances
apply, so neither a small absolute rise on a busy error rate nor a doubling of a
tiny one passes. The test is exact at low counts (Fisher's, with the limit as an
odds ratio). Latency: at p50 and at p99 the canary fails when its quantile is
significantly above production's times the allowed ratio (Mood's quantile test,
the same exact test on who lies above the pooled quantile). Too few samples, or
none, is INCONCLUSIVE (never PASS, never FAIL: argo-rollouts #1466); a
catastrophic error rate FAILS at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from proxy.analysis.counts import VersionWindow
from proxy.analysis.exact import rank_interval, upper_tail, wilson_interval
from proxy.analysis.histogram import EDGES_S, Histogram
from proxy.analysis.verdict import MetricVerdict, Outcome, Verdict

_BISECTIONS = 30


@dataclass(frozen=True, slots=True)
class JudgePolicy:
    min_requests: int = 200  # per version, in the window; below it: INCONCLUSIVE
    catastrophic_error_rate: float = 0.5  # at or above it the canary fails at once...
    catastrophic_min_requests: int = 20  # ...once it has served this many requests
    error_allowed_increase: float = 0.01  # +1 point over production's error rate
    error_allowed_ratio: float = 1.5  # x1.5 production's error rate
    p50_allowed_ratio: float = 1.25
    p99_allowed_ratio: float = 1.5
    # ...or +5 ms, whichever allows more: a ratio alone fails sub-millisecond noise
    # (1.2 -> 2.0 ms is x1.7) that no user notices.
    latency_allowed_increase_s: float = 0.005
    significance: float = 0.10  # one-sided: the canary fails when p < this (see the README)

    def __post_init__(self) -> None:
        if self.min_requests < 1 or self.catastrophic_min_requests < 1:
            raise ValueError("the minimum sample sizes must be at least 1")
        if not 0 < self.catastrophic_error_rate <= 1:
            raise ValueError("catastrophic_error_rate must be in (0, 1]")
        if self.error_allowed_increase < 0 or self.error_allowed_ratio < 1:
            raise ValueError("error allowances must be >= 0 (increase) and >= 1 (ratio)")
        if self.p50_allowed_ratio < 1 or self.p99_allowed_ratio < 1:
            raise ValueError("latency allowed ratios must be >= 1")
        if self.latency_allowed_increase_s < 0:
            raise ValueError("latency_allowed_increase_s must be >= 0")
        if not 0 < self.significance < 0.5:
            raise ValueError("significance must be in (0, 0.5)")


def judge(canary: VersionWindow, baseline: VersionWindow, policy: JudgePolicy | None = None) -> Verdict:
    policy = policy or JudgePolicy()
    return Verdict.of(
        (
            judge_errors(canary, baseline, policy),
            judge_latency(canary.latency, baseline.latency, 0.50, policy.p50_allowed_ratio, policy),
            judge_latency(canary.latency, baseline.latency, 0.99, policy.p99_allowed_ratio, policy),
        )
    )


def judge_errors(canary: VersionWindow, baseline: VersionWindow, policy: JudgePolicy) -> MetricVerdict:
    x_c, x_b = canary.errors, baseline.errors
    # Outcomes can land a flush after their request; never let a table go negative.
    n_c, n_b = max(canary.requests, x_c), max(baseline.requests, x_b)
    rate_c = x_c / n_c if n_c else None
    rate_b = x_b / n_b if n_b else None

    def verdict(
        outcome: Outcome,
        reason: str,
        *,
        limit: float | None = None,
        test: str = "",
        statistic: float | None = None,
        p_value: float | None = None,
        decisive: bool = False,
    ) -> MetricVerdict:
        intervals = wilson_interval(x_c, n_c), wilson_interval(x_b, n_b)
        return MetricVerdict(
            "errors",
            outcome,
            reason,
            rate_c,
            rate_b,
            limit,
            n_c,
            n_b,
            *intervals,
            test,
            statistic,
            p_value,
            decisive,
        )

    catastrophic = rate_c is not None and rate_c >= policy.catastrophic_error_rate
    if catastrophic and n_c >= policy.catastrophic_min_requests:
        reason = f"catastrophic: >= {policy.catastrophic_error_rate:.0%} errors"
        return verdict(Outcome.FAIL, reason, decisive=True)
    if n_c < policy.min_requests or n_b < policy.min_requests or rate_b is None:
        return verdict(Outcome.INCONCLUSIVE, _too_few(n_c, n_b, policy.min_requests, "requests"))
    limit = min(rate_b + policy.error_allowed_increase, rate_b * policy.error_allowed_ratio)
    allowed_odds = _odds_ratio_of_limit(rate_b, limit, policy.error_allowed_ratio)
    p = upper_tail(x_c, n_c, n_b, x_c + x_b, allowed_odds) if limit < 1 else 1.0
    observed_odds = ((x_c + 0.5) * (n_b - x_b + 0.5)) / ((n_c - x_c + 0.5) * (x_b + 0.5))
    failed = p < policy.significance
    return verdict(
        Outcome.FAIL if failed else Outcome.PASS,
        "significantly above the limit" if failed else "not significantly above the limit",
        limit=limit,
        test=f"Fisher's exact, one-sided, H0: odds ratio <= {allowed_odds:.3g}",
        statistic=observed_odds,
        p_value=p,
    )


def _odds_ratio_of_limit(rate: float, limit: float, allowed_ratio: float) -> float:
    """The odds ratio of the limit to production's rate; at a rate of 0 the relative
    allowance binds (min(0 + a, 0 x r) = 0), and its odds ratio tends to r."""
    if rate <= 0:
        return allowed_ratio
    if limit >= 1:
        return math.inf
    return (limit / (1 - limit)) / (rate / (1 - rate)) if rate < 1 else 1.0


def judge_latency(
    canary: Histogram, baseline: Histogram, q: float, allowed_ratio: float, policy: JudgePolicy
) -> MetricVerdict:
    name = f"latency_p{round(q * 100)}"
    n_c, n_b = canary.count, baseline.count
    q_c, q_b = canary.quantile(q), baseline.quantile(q)

    if q_b:
        # The limit is the larger of production x ratio and production + the allowance;
        # as a ratio, so Mood's test below scales production by it either way.
        allowed_ratio = max(allowed_ratio, 1 + policy.latency_allowed_increase_s / q_b)
    limit = None if q_b is None else q_b * allowed_ratio

    def verdict(
        outcome: Outcome,
        reason: str,
        test: str = "",
        statistic: float | None = None,
        p_value: float | None = None,
    ) -> MetricVerdict:
        intervals = _quantile_interval(canary, q), _quantile_interval(baseline, q)
        return MetricVerdict(
            name, outcome, reason, q_c, q_b, limit, n_c, n_b, *intervals, test, statistic, p_value
        )

    if n_c < policy.min_requests or n_b < policy.min_requests or q_c is None or q_b is None:
        return verdict(Outcome.INCONCLUSIVE, _too_few(n_c, n_b, policy.min_requests, "timed responses"))
    # Mood's test of the canary against production slowed by the allowed ratio: at the
    # limit both have the same share above their pooled q-quantile.
    threshold = _pooled_threshold(canary, baseline, allowed_ratio, (1 - q) * (n_c + n_b))
    above_c = round(canary.count_above(threshold))
    above_b = round(baseline.count_above(threshold / allowed_ratio))
    p = upper_tail(above_c, n_c, n_b, above_c + above_b)
    failed = p < policy.significance
    return verdict(
        Outcome.FAIL if failed else Outcome.PASS,
        "significantly above the limit" if failed else "not significantly above the limit",
        test=(
            f"Mood's quantile test, one-sided, H0: canary {name[8:]} <= {allowed_ratio:g} x production's"
            f" ({above_c} of {n_c} vs {above_b} of {n_b} above {threshold * 1000:.1f} ms)"
        ),
        statistic=q_c / q_b if q_b > 0 else math.inf,
        p_value=p,
    )


def _pooled_threshold(canary: Histogram, baseline: Histogram, ratio: float, above: float) -> float:
    """The latency t with `above` samples over it, pooling the canary and production x ratio.

    Bisected on log t between 1 us and past the last edge: 30 halvings of that span
    leave t within a millionth of itself, far finer than a bucket."""
    low, high = math.log(1e-6), math.log(EDGES_S[-1] * ratio * 2)
    for _ in range(_BISECTIONS):
        mid = (low + high) / 2
        t = math.exp(mid)
        if canary.count_above(t) + baseline.count_above(t / ratio) > above:
            low = mid
        else:
            high = mid
    return math.exp((low + high) / 2)


def _quantile_interval(histogram: Histogram, q: float) -> tuple[float, float] | None:
    low_rank, high_rank = rank_interval(histogram.count, q)
    low, high = histogram.value_at_rank(low_rank), histogram.value_at_rank(high_rank)
    return None if low is None or high is None else (low, high)


def _too_few(n_c: int, n_b: int, minimum: int, what: str) -> str:
    return f"too few {what} to judge: canary {n_c}, production {n_b}, need {minimum} each"
