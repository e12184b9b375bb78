"""Exact conditional tests on a 2x2 table, in pure Python: no SciPy, no I/O.

Two groups of n1 and n2 trials with m successes between them. Given m, the count
in group 1 follows Fisher's noncentral hypergeometric distribution with the
groups' odds ratio psi; psi = 1 is Fisher's exact test. The test is exact at any
count, which is why the judge uses it: error counts are small and a normal
approximation (or Mann-Whitney on sparse counts, kayenta #426) misleads there.
"""

from __future__ import annotations

import math

# Terms below this fraction of the largest are dropped: the distribution is
# log-concave, so once past the peak they only shrink.
_NEGLIGIBLE = 1e-18


def upper_tail(x: int, n1: int, n2: int, m: int, odds_ratio: float = 1.0) -> float:
    """P(X >= x): the one-sided p-value that group 1's odds exceed `odds_ratio` times group 2's."""
    if min(n1, n2, m) < 0 or m > n1 + n2:
        raise ValueError(f"not a 2x2 table: n1={n1} n2={n2} m={m}")
    if not odds_ratio > 0:
        raise ValueError(f"odds ratio must be positive, got {odds_ratio}")
    lo, hi = max(0, m - n2), min(m, n1)
    if x <= lo:
        return 1.0
    if x > hi or math.isinf(odds_ratio):
        return 0.0 if x > hi else 1.0
    weights = _weights(n1, n2, m, odds_ratio, lo=lo, hi=hi)
    total = sum(weights.values())
    return min(1.0, sum(w for k, w in weights.items() if k >= x) / total)


def _ratio(k: int, n1: int, n2: int, m: int, psi: float) -> float:
    """P(X = k + 1) / P(X = k), from the binomial coefficients' ratios."""
    return psi * (n1 - k) * (m - k) / ((k + 1) * (n2 - m + k + 1))


def _mode(n1: int, n2: int, m: int, psi: float, *, lo: int, hi: int) -> int:
    # The k where the ratio above crosses 1: a quadratic a k^2 + b k + c = 0, solved in
    # the form that does not cancel when psi is close to 1.
    a = psi - 1.0
    b = -(psi * (n1 + m) + n2 - m + 2.0)
    c = psi * n1 * m - (n2 - m + 1.0)
    k = 2.0 * c / (-b + math.sqrt(max(b * b - 4.0 * a * c, 0.0)))
    return min(max(math.ceil(k), lo), hi)


def _weights(n1: int, n2: int, m: int, psi: float, *, lo: int, hi: int) -> dict[int, float]:
    """Unnormalised probabilities relative to the mode, walking outward until negligible."""
    mode = _mode(n1, n2, m, psi, lo=lo, hi=hi)
    weights = {mode: 1.0}
    peak, w = 1.0, 1.0
    for k in range(mode, hi):
        w *= _ratio(k, n1, n2, m, psi)
        weights[k + 1] = w
        peak = max(peak, w)
        if w < _NEGLIGIBLE * peak:
            break
    w = 1.0
    for k in range(mode - 1, lo - 1, -1):
        w /= _ratio(k, n1, n2, m, psi)
        weights[k] = w
        peak = max(peak, w)
        if w < _NEGLIGIBLE * peak:
            break
    return weights


def rank_interval(n: int, q: float, z: float = 1.96) -> tuple[float, float]:
    """A distribution-free interval for the q-quantile, as ranks: the count of samples
    below the true quantile is Binomial(n, q)."""
    spread = z * math.sqrt(n * q * (1.0 - q))
    return max(n * q - spread, 0.0), min(n * q + spread, float(n))


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval for a rate: sound at 0 and at small counts, unlike p +- z*se."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)
