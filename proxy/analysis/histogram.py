"""A fixed, log-spaced latency histogram: pure values, no I/O, no clock.

Every proxy uses the same edges, so histograms from any proxy and any time bucket
add up by index. Edge i is 0.5 ms x 1.25**i for i = 0..53 (0.5 ms to 68.4 s), so
a bucket is 25% wide and a quantile read from it is off by at most that much:
bucket 0 holds [0, 0.5 ms), bucket i (1..53) holds [edge i-1, edge i), and the
last bucket, 54, holds everything from 68.4 s up (a reading there is ">= 68.4 s").
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FIRST_EDGE_S = 0.0005
GROWTH = 1.25
EDGE_COUNT = 54  # 0.5 ms x 1.25**53 = 68.4 s: the first edge past 60 s
EDGES_S: tuple[float, ...] = tuple(FIRST_EDGE_S * GROWTH**i for i in range(EDGE_COUNT))
BUCKETS = EDGE_COUNT + 1


def bucket_index(latency_s: float) -> int:
    """The bucket a latency falls in; negative latencies (a clock step) count as 0."""
    return bisect.bisect_right(EDGES_S, latency_s)


def bucket_bounds(index: int) -> tuple[float, float]:
    """[low, high) of a bucket in seconds; the last bucket's high is its low (no upper edge)."""
    if not 0 <= index < BUCKETS:
        raise ValueError(f"bucket index {index} is outside 0..{BUCKETS - 1}")
    low = 0.0 if index == 0 else EDGES_S[index - 1]
    high = EDGES_S[index] if index < EDGE_COUNT else low
    return low, high


class HistogramError(ValueError):
    """A serialised histogram that does not fit the fixed edges."""


@dataclass(frozen=True, slots=True)
class Histogram:
    counts: tuple[int, ...] = (0,) * BUCKETS

    def __post_init__(self) -> None:
        if len(self.counts) != BUCKETS:
            raise HistogramError(f"a histogram has {BUCKETS} buckets, got {len(self.counts)}")
        if any(n < 0 for n in self.counts):
            raise HistogramError("histogram counts must not be negative")

    @classmethod
    def of(cls, latencies_s: Iterable[float]) -> Histogram:
        counts = [0] * BUCKETS
        for latency in latencies_s:
            counts[bucket_index(latency)] += 1
        return cls(tuple(counts))

    @property
    def count(self) -> int:
        return sum(self.counts)

    def __add__(self, other: Histogram) -> Histogram:
        return Histogram(tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)))

    def merge(self, other: Histogram) -> Histogram:
        return self + other

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 < q < 1), interpolated linearly within its bucket; None if empty."""
        return self.value_at_rank(q * self.count)

    def value_at_rank(self, rank: float) -> float | None:
        """The latency below which `rank` of the samples lie (a fractional rank interpolates)."""
        total = self.count
        if total == 0:
            return None
        rank = min(max(rank, 0.0), float(total))
        seen = 0
        for index, n in enumerate(self.counts):
            if n and seen + n >= rank:
                low, high = bucket_bounds(index)
                return low + (high - low) * (rank - seen) / n
            seen += n
        raise AssertionError("unreachable: rank is clamped to the total")

    def count_above(self, threshold_s: float) -> float:
        """Samples above a latency; a bucket the threshold cuts counts in proportion."""
        index = bucket_index(threshold_s)
        above = float(sum(self.counts[index + 1 :]))
        n = self.counts[index]
        if n:
            low, high = bucket_bounds(index)
            above += n if high <= low else n * (high - threshold_s) / (high - low)
        return above

    def to_sparse(self) -> dict[int, int]:
        """The compact form, for Redis hash fields and JSON: bucket index -> count, zeros left out."""
        return {index: n for index, n in enumerate(self.counts) if n}

    @classmethod
    def from_sparse(cls, sparse: Mapping[int, int] | Mapping[str, int] | Mapping[str, str]) -> Histogram:
        """From to_sparse's dict, from JSON (string keys) or a Redis hash (strings)."""
        counts = [0] * BUCKETS
        items: list[tuple[int | str, int | str]] = list(sparse.items())
        for key, value in items:
            try:
                index, n = int(key), int(value)
            except ValueError as exc:
                raise HistogramError(f"histogram entry {key!r}: {value!r} is not two integers") from exc
            if not 0 <= index < BUCKETS:
                raise HistogramError(f"histogram bucket {index} is outside 0..{BUCKETS - 1}")
            counts[index] += n
        return cls(tuple(counts))


EMPTY = Histogram()
