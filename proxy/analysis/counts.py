"""What each proxy counts per version: a mutable counter for the data path and the
immutable window it hands on (to Redis buckets, to the judge). No I/O, no clock.

Each finished request is counted once: either as a response by status class (what
the upstream answered) or as an upstream error (no answer: connect, reset, timeout).
`requests` counts requests as they are routed, so a window may hold a few requests
whose outcome lands in the next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from proxy.analysis.histogram import BUCKETS, EMPTY, Histogram, bucket_index

UpstreamError = Literal["connect", "reset", "timeout"]
UPSTREAM_ERRORS: tuple[UpstreamError, ...] = ("connect", "reset", "timeout")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class CountsError(ValueError):
    """A serialised window that does not parse."""


@dataclass(frozen=True, slots=True)
class VersionWindow:
    """One version's counts over a window: a delta from one proxy, or many merged."""

    requests: int = 0
    responses: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # 1xx..5xx
    upstream_errors: tuple[int, int, int] = (0, 0, 0)  # connect, reset, timeout
    latency: Histogram = field(default=EMPTY)

    def __post_init__(self) -> None:
        if self.requests < 0 or min(self.responses) < 0 or min(self.upstream_errors) < 0:
            raise CountsError("counts must not be negative")

    @property
    def errors(self) -> int:
        """What the judge counts as failed: 5xx answers plus requests that got no answer."""
        return self.responses[4] + sum(self.upstream_errors)

    @property
    def error_rate(self) -> float | None:
        trials = max(self.requests, self.errors)
        return self.errors / trials if trials else None

    def __add__(self, other: VersionWindow) -> VersionWindow:
        return VersionWindow(
            self.requests + other.requests,
            _add5(self.responses, other.responses),
            _add3(self.upstream_errors, other.upstream_errors),
            self.latency + other.latency,
        )

    def merge(self, other: VersionWindow) -> VersionWindow:
        return self + other

    def to_dict(self) -> dict[str, object]:
        """The serialised form (JSON, Redis hash fields through state/): plain ints."""
        return {
            "requests": self.requests,
            "responses": dict(zip(STATUS_CLASSES, self.responses, strict=True)),
            "upstream_errors": dict(zip(UPSTREAM_ERRORS, self.upstream_errors, strict=True)),
            "latency": self.latency.to_sparse(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> VersionWindow:
        try:
            responses = _mapping(data.get("responses", {}))
            upstream = _mapping(data.get("upstream_errors", {}))
            r = [_int(responses.get(k, 0)) for k in STATUS_CLASSES]
            u = [_int(upstream.get(k, 0)) for k in UPSTREAM_ERRORS]
            latency = _mapping(data.get("latency", {}))
            return cls(
                _int(data.get("requests", 0)),
                (r[0], r[1], r[2], r[3], r[4]),
                (u[0], u[1], u[2]),
                Histogram.from_sparse({str(k): _int(v) for k, v in latency.items()}),
            )
        except ValueError as exc:
            raise CountsError(f"version window: {exc}") from exc


class VersionCounter:
    """The data path's accumulator: plain list increments, no lock, no allocation per request.

    `take()` hands over what was counted since the last take, as a window, and starts
    again from zero: the once-a-second flush adds those deltas into Redis.
    """

    __slots__ = ("latency", "requests", "responses", "upstream_errors")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.requests = 0
        self.responses = [0] * 6  # index = status // 100; 0 for a status out of range
        self.upstream_errors = [0, 0, 0]
        self.latency = [0] * BUCKETS

    def request(self) -> None:
        self.requests += 1

    def response(self, status: int, latency_s: float) -> None:
        klass = status // 100
        self.responses[klass if 0 < klass < 6 else 0] += 1
        self.latency[bucket_index(latency_s)] += 1

    def answered(self, status: int) -> None:
        """A response with no latency to record (it came before the request was all sent)."""
        klass = status // 100
        self.responses[klass if 0 < klass < 6 else 0] += 1

    def upstream_error(self, kind: UpstreamError) -> None:
        self.upstream_errors[UPSTREAM_ERRORS.index(kind)] += 1

    def take(self) -> VersionWindow:
        r = self.responses
        window = VersionWindow(
            self.requests,
            (r[1], r[2], r[3], r[4], r[5]),
            (self.upstream_errors[0], self.upstream_errors[1], self.upstream_errors[2]),
            Histogram(tuple(self.latency)),
        )
        self._reset()
        return window


def _add5(
    a: tuple[int, int, int, int, int], b: tuple[int, int, int, int, int]
) -> tuple[int, int, int, int, int]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4])


def _add3(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"{value!r} is not an integer")


def _mapping(value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    return value
