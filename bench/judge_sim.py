"""The canary judge's false-positive rate and power, from seeded simulations.

`python -m bench.judge_sim [--windows 1000] [--seed 1]` judges many simulated
windows (canary and production, each n requests with some error rate and a
log-normal latency) and prints how often the judge says FAIL: for identical
versions that is the false-positive rate, for a worse canary its power. Windows
are drawn as counts (binomial errors, multinomial histogram buckets), never as
requests, so a thousand windows take seconds. A benchmark, not a test; the tests
in tests/proxy/analysis call the same functions with smaller numbers.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.analysis import Histogram, JudgePolicy, Outcome, VersionWindow, judge
from proxy.analysis.histogram import BUCKETS, EDGES_S, EMPTY


@dataclass(frozen=True, slots=True)
class Model:
    """A version's behaviour: an error rate, and latency = shift + lognormal(median, sigma)."""

    error_rate: float = 0.01
    median_s: float = 0.100
    sigma: float = 0.5
    shift_s: float = 0.0

    def bucket_cdf(self) -> list[float]:
        """P(latency < upper edge of bucket i), the last bucket closing at 1."""
        cdf = []
        for edge in EDGES_S:
            x = edge - self.shift_s
            cdf.append(0.0 if x <= 0 else _normal_cdf(math.log(x / self.median_s) / self.sigma))
        cdf.append(1.0)
        return cdf


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def binomial(rng: random.Random, n: int, p: float) -> int:
    """An exact binomial draw: invert the CDF, searching outward from the mode, so a
    draw costs ~ sqrt(n p (1 - p)) steps rather than n."""
    if p <= 0 or n <= 0:
        return 0
    if p >= 1:
        return n
    mode = min(int((n + 1) * p), n)
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(mode + 1)
        - math.lgamma(n - mode + 1)
        + mode * math.log(p)
        + (n - mode) * math.log1p(-p)
    )
    odds = p / (1 - p)
    u = rng.random()
    low = high = mode
    p_low = p_high = total = math.exp(log_pmf)
    # Alternate a term above and a term below: every k still gets exactly its probability.
    while u > total:
        if high < n:
            p_high *= odds * (n - high) / (high + 1)
            high += 1
            total += p_high
            if u <= total:
                return high
        if low > 0:
            p_low /= odds * (n - low + 1) / low
            low -= 1
            total += p_low
        elif high >= n:
            return mode  # rounding left a sliver of u above the total: a measure-zero event
    return low


def histogram(rng: random.Random, n: int, cdf: Sequence[float]) -> Histogram:
    """A multinomial draw of n latencies into the buckets, as conditional binomials."""
    counts = [0] * BUCKETS
    left, below = n, 0.0
    for index, upper in enumerate(cdf):
        if left == 0:
            break
        share = (upper - below) / (1.0 - below) if below < 1.0 else 1.0
        counts[index] = binomial(rng, left, min(max(share, 0.0), 1.0)) if index < BUCKETS - 1 else left
        left -= counts[index]
        below = upper
    return Histogram(tuple(counts))


def window(rng: random.Random, n: int, model: Model, cdf: Sequence[float] | None) -> VersionWindow:
    """n requests, each answered 2xx or 5xx and timed; no latencies at all without a cdf."""
    errors = binomial(rng, n, model.error_rate)
    latency = histogram(rng, n, cdf) if cdf is not None else EMPTY
    return VersionWindow(n, (0, n - errors, 0, 0, errors), (0, 0, 0), latency)


def fail_rate(
    canary: Model,
    baseline: Model,
    n: int,
    windows: int,
    *,
    seed: int = 1,
    policy: JudgePolicy | None = None,
    metric: str | None = None,
    latency: bool = True,
) -> float:
    """The share of windows judged FAIL, overall or for one metric ("errors", "latency_p50", ...).
    Without `latency` no latencies are drawn (5x faster), which only an errors verdict can use."""
    rng = random.Random(seed)
    cdf_c, cdf_b = (canary.bucket_cdf(), baseline.bucket_cdf()) if latency else (None, None)
    fails = 0
    for _ in range(windows):
        verdict = judge(window(rng, n, canary, cdf_c), window(rng, n, baseline, cdf_b), policy)
        outcome = verdict.outcome if metric is None else verdict.metric(metric).outcome
        fails += outcome is Outcome.FAIL
    return fails / windows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.judge_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=1000, help="windows per cell (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sizes = (200, 500, 2000, 10000)

    def row(label: str, canary: Model, baseline: Model, metric: str | None = None) -> None:
        rates = [
            fail_rate(
                canary, baseline, n, args.windows, seed=args.seed, metric=metric, latency=metric != "errors"
            )
            for n in sizes
        ]
        print(f"{label:<44}" + "".join(f"{r:>9.1%}" for r in rates))

    print(f"FAIL rate over {args.windows} windows per cell; requests per version and window:")
    print(f"{'':<44}" + "".join(f"{n:>9}" for n in sizes))
    print("false positives (identical versions, overall verdict)")
    for rate in (0.001, 0.01, 0.05):
        same = Model(error_rate=rate)
        row(f"  errors {rate:.1%}, latency 100 ms median", same, same)
    print("power: errors +2 points (errors verdict)")
    for rate in (0.0, 0.005, 0.01, 0.02):
        row(
            f"  {rate:.1%} -> {rate + 0.02:.1%}",
            Model(error_rate=rate + 0.02),
            Model(error_rate=rate),
            "errors",
        )
    print("power: canary 100 ms slower (overall verdict)")
    for median in (0.05, 0.1, 0.2, 0.4):
        slow = Model(median_s=median, shift_s=0.1)
        row(f"  median {median * 1000:.0f} ms -> +100 ms", slow, Model(median_s=median))
    print("power: same median, higher variance (p99 verdict; kayenta #780)")
    row("  sigma 0.5 -> 1.0", Model(sigma=1.0), Model(sigma=0.5), "latency_p99")
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
