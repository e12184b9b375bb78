"""A verdict that explains itself: per metric, both versions' values, the limit, the
sample sizes, the test and its p-value, the intervals. Values only; no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class Outcome(StrEnum):
    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class MetricVerdict:
    metric: str  # "errors" (a rate), "latency_p50", "latency_p99" (seconds)
    outcome: Outcome
    reason: str  # why, in a few words
    canary: float | None  # the canary's value: an error rate, or a latency in seconds
    baseline: float | None  # production's value over the same window
    limit: float | None  # the highest canary value allowed: baseline plus the allowance
    canary_n: int  # sample sizes: requests for errors, timed responses for latency
    baseline_n: int
    canary_interval: Interval | None  # 95% intervals of each version's value
    baseline_interval: Interval | None
    test: str  # the test and its null hypothesis, "" when none ran
    statistic: float | None  # errors: observed odds ratio; latency: quantile ratio
    p_value: float | None  # one-sided: small means the canary is worse than the limit
    decisive: bool = False  # a FAIL no second window could undo (a catastrophic error rate)

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"outcome": str(self.outcome)}

    def explain(self) -> str:
        head = f"{self.metric} {self.outcome}"
        if self.canary is None or self.baseline is None:
            return f"{head} ({self.reason})"
        show = _percent if self.metric == "errors" else _ms
        parts = [
            f"canary {show(self.canary)} of {self.canary_n}",
            f"production {show(self.baseline)} of {self.baseline_n}",
        ]
        if self.limit is not None:
            parts.append(f"limit {show(self.limit)}")
        if self.p_value is not None:
            parts.append(f"p={self.p_value:.3g}" if self.p_value >= 1e-12 else "p<1e-12")
        return f"{head} ({self.reason}: {', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    metrics: tuple[MetricVerdict, ...]

    @classmethod
    def of(cls, metrics: tuple[MetricVerdict, ...]) -> Verdict:
        """Any FAIL fails; else any INCONCLUSIVE is inconclusive; only all PASS passes."""
        outcomes = {m.outcome for m in metrics}
        if Outcome.FAIL in outcomes:
            return cls(Outcome.FAIL, metrics)
        if Outcome.INCONCLUSIVE in outcomes or not metrics:
            return cls(Outcome.INCONCLUSIVE, metrics)
        return cls(Outcome.PASS, metrics)

    @property
    def decisive(self) -> bool:
        """A FAIL to act on at once, without judging another window."""
        return any(m.decisive and m.outcome is Outcome.FAIL for m in self.metrics)

    def metric(self, name: str) -> MetricVerdict:
        for m in self.metrics:
            if m.metric == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        return {"outcome": str(self.outcome), "metrics": [m.to_dict() for m in self.metrics]}

    def explain(self) -> str:
        return f"{self.outcome}: " + "; ".join(m.explain() for m in self.metrics)


def _percent(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
