"""The dashboard's hour of per-version points, pure: the buckets every proxy adds its
counts into (state/versionstats.py) in, one point per bucket and version out (req/s,
5xx rate, p50, p99). No I/O, no clock: the caller passes the time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from proxy.analysis import VersionWindow
from proxy.analysis.counts import CountsError
from proxy.versionstats import from_flat
from state import StatsSpan
from state.model import PoolName

HOUR_S = 3600.0

# (pool, release) -> counter name -> count: one bucket, as state/ reads it
BucketCounts = Mapping[tuple[PoolName, str], Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class Point:
    at: float  # the bucket's start
    requests: int
    rps: float
    error_rate: float | None  # 5xx among the answers; None: no answers
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


def point(at: float, seconds: float, window: VersionWindow) -> Point:
    answered = sum(window.responses)
    return Point(
        at=at,
        requests=window.requests,
        rps=window.requests / seconds if seconds > 0 else 0.0,
        error_rate=window.responses[4] / answered if answered else None,
        p50_s=window.latency.quantile(0.50),
        p99_s=window.latency.quantile(0.99),
    )


def pool_window(counts: BucketCounts, pool: PoolName) -> VersionWindow | None:
    """What `pool` served in one bucket, every release summed (a chart spans deploys);
    None if it served nothing there."""
    total: VersionWindow | None = None
    for (p, _), flat in counts.items():
        if p != pool:
            continue
        try:
            window = from_flat(flat)
        except CountsError:
            continue  # a field written by hand that does not parse
        total = window if total is None else total + window
    return total


class Hour:
    """The last hour (by default) of buckets, as read from Redis: a read replaces every
    bucket it covered, so counts added late by any proxy show once read again."""

    def __init__(self, bucket_s: int, span_s: float = HOUR_S) -> None:
        self.bucket_s = bucket_s
        self.span_s = span_s
        self.buckets: dict[int, BucketCounts] = {}
        # Each bucket's points, kept until a read changes it: a page opening asks for all.
        self._points: dict[tuple[int, PoolName], Point | None] = {}

    def update(self, span: StatsSpan, now: float) -> set[int]:
        """Take a read; returns the buckets whose counts changed (added, grown or gone)."""
        changed = set()
        for bucket in range(span.start, span.end, span.bucket_s):
            new = span.buckets.get(bucket)
            if new is None:
                if self.buckets.pop(bucket, None) is not None:
                    changed.add(bucket)
            elif self.buckets.get(bucket) != new:
                self.buckets[bucket] = new
                changed.add(bucket)
        oldest = now - self.span_s - self.bucket_s
        for bucket in [b for b in self.buckets if b < oldest]:
            del self.buckets[bucket]
        for key in [k for k in self._points if k[0] in changed or k[0] < oldest]:
            del self._points[key]
        return changed

    def seconds(self, bucket: int, now: float) -> float:
        """How much of a bucket has passed: all of it, but for the one `now` is in."""
        return min(max(now - bucket, 1.0), float(self.bucket_s))

    def points(self, pool: PoolName, now: float, buckets: Iterable[int] | None = None) -> list[Point]:
        """The pool's points, oldest first: every bucket it served in, or, given `buckets`,
        each of those (an empty point where it served nothing, so a page drops what it had)."""
        out = []
        for bucket in sorted(self.buckets if buckets is None else buckets):
            found = self._point(bucket, pool, now)
            if found is None and buckets is None:
                continue
            out.append(found or point(float(bucket), self.bucket_s, VersionWindow()))
        return out

    def _point(self, bucket: int, pool: PoolName, now: float) -> Point | None:
        if now < bucket + self.bucket_s:  # in progress: its rate is over the part passed
            window = pool_window(self.buckets.get(bucket, {}), pool)
            return None if window is None else point(float(bucket), self.seconds(bucket, now), window)
        key = (bucket, pool)
        if key not in self._points:
            window = pool_window(self.buckets.get(bucket, {}), pool)
            self._points[key] = None if window is None else point(float(bucket), self.bucket_s, window)
        return self._points[key]

    def span(self, start: float, end: float) -> StatsSpan:
        """The buckets over [start, end), widened to whole buckets, as a read would give."""
        first = int(start // self.bucket_s) * self.bucket_s
        last = int(end // self.bucket_s) * self.bucket_s
        buckets = {b: c for b, c in self.buckets.items() if first <= b <= last}
        return StatsSpan(first, last + self.bucket_s, self.bucket_s, buckets)

    def rate(self, pool: PoolName, now: float, span_s: float) -> float:
        """The pool's requests a second over the whole buckets reaching `span_s` back, up to
        now (every release: the rate served, whichever it was)."""
        span = self.span(now - span_s, now)
        windows = (pool_window(counts, pool) for counts in span.buckets.values())
        requests = sum(w.requests for w in windows if w is not None)
        seconds = now - span.start
        return requests / seconds if seconds > 0 else 0.0
