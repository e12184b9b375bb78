"""The dashboard's hour of per-version points, pure: cumulative counters in, one point per
step out (req/s, 5xx rate, p50, p99). No I/O, no clock: the caller passes the time."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Counters:
    """One version's counters since the proxy started: they only grow (or reset to zero
    when a source restarts). `latency[i]` counts answers at or below `bounds[i]`'s bucket;
    the last entry counts those above every bound."""

    requests: int = 0
    errors: int = 0  # 5xx answers
    bounds: tuple[float, ...] = ()
    latency: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Point:
    at: float
    requests: int
    rps: float
    error_rate: float | None  # None: no answers in the step
    p50_s: float | None
    p99_s: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "at": round(self.at, 3),
            "n": self.requests,
            "rps": round(self.rps, 3),
            "err": None if self.error_rate is None else round(self.error_rate, 5),
            "p50": None if self.p50_s is None else round(self.p50_s, 6),
            "p99": None if self.p99_s is None else round(self.p99_s, 6),
        }


def quantile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The q-quantile of a bucketed distribution, interpolated within its bucket; the
    overflow bucket reads as the last bound (a floor, as Prometheus does)."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            if index >= len(bounds):
                return bounds[-1] if bounds else None
            low = 0.0 if index == 0 else bounds[index - 1]
            return low + (bounds[index] - low) * (rank - seen) / n
        seen += n
    return bounds[-1] if bounds else None


def delta(now: Counters, before: Counters | None) -> Counters:
    """What happened between two readings; a reading that went down is a restart."""
    if before is None or now.requests < before.requests or now.bounds != before.bounds:
        return now
    latency = tuple(max(a - b, 0) for a, b in zip(now.latency, before.latency, strict=False))
    return Counters(now.requests - before.requests, max(now.errors - before.errors, 0), now.bounds, latency)


def point(at: float, step_s: float, window: Counters) -> Point:
    return Point(
        at=at,
        requests=window.requests,
        rps=window.requests / step_s if step_s > 0 else 0.0,
        error_rate=window.errors / window.requests if window.requests else None,
        p50_s=quantile(window.bounds, window.latency, 0.50),
        p99_s=quantile(window.bounds, window.latency, 0.99),
    )


class History:
    """An hour (by default) of points per version, one every `step_s`.

    A version gets a point for each step once it has counters; a step without
    traffic is a point with zero requests and no latency, so a chart shows the gap.
    """

    def __init__(self, step_s: float = 5.0, span_s: float = 3600.0) -> None:
        self.step_s = step_s
        self.size = max(int(span_s / step_s), 1)
        self.points: dict[str, deque[Point]] = {}
        self._start: dict[str, Counters] = {}
        self._step_at: float | None = None

    def add(self, at: float, readings: Mapping[str, Counters]) -> dict[str, Point]:
        """Record a reading; returns the points a step closed by it (empty mid-step)."""
        if self._step_at is None:
            self._step_at = at
            self._start = dict(readings)
            return {}
        elapsed = at - self._step_at
        if elapsed < self.step_s:
            return {}
        closed = {}
        for version, now in readings.items():
            closed[version] = point(at, elapsed, delta(now, self._start.get(version)))
            self.points.setdefault(version, deque(maxlen=self.size)).append(closed[version])
        self._step_at = at
        self._start = dict(readings)
        return closed

    def to_json(self) -> dict[str, list[dict[str, object]]]:
        return {version: [p.to_json() for p in points] for version, points in sorted(self.points.items())}

    def recent(self, version: str, span_s: float) -> list[Point]:
        points = self.points.get(version)
        if not points:
            return []
        since = points[-1].at - span_s
        return [p for p in points if p.at > since]


def served_share(history: History, versions: Sequence[str], span_s: float = 60.0) -> dict[str, float | None]:
    """Each version's share of the answers over the last `span_s` (None: no traffic)."""
    totals = {v: sum(p.requests for p in history.recent(v, span_s)) for v in versions}
    whole = sum(totals.values())
    return {v: (n / whole if whole else None) for v, n in totals.items()}
