"""Per-version stats across every proxy, read back from Redis: the windows the rollout
controller judges and `proxy stats` shows.

A window holds one release per pool: the one the pool served last in it (the most
requests in the latest bucket with any). Counts of an older release in the same window
are left out, so a canary is never judged on a mix of two releases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from proxy.analysis import VersionWindow
from proxy.analysis.counts import STATUS_CLASSES, UPSTREAM_ERRORS, CountsError
from state import POOLS, UNKNOWN_RELEASE, StatsSpan, VersionStatsStore
from state.model import PoolName


@dataclass(frozen=True)
class VersionWindows:
    production: VersionWindow
    staging: VersionWindow
    production_release: str  # sha or "unknown"
    staging_release: str
    start: float  # the span actually covered (bucket-aligned)
    end: float


async def read_window(stats: VersionStatsStore, start: float, end: float) -> VersionWindows:
    """Every proxy's counts over [start, end), widened to whole buckets."""
    span = await stats.read(start, end)
    chosen = {pool: latest_release(span, pool) for pool in POOLS}
    if None in chosen.values():
        # An idle pool still has a release to show: its deploy history says which.
        known = await stats.releases()
        chosen = {pool: release or known[pool] for pool, release in chosen.items()}
    production = chosen["production"] or UNKNOWN_RELEASE
    staging = chosen["staging"] or UNKNOWN_RELEASE
    return VersionWindows(
        production=window_of(span, "production", production),
        staging=window_of(span, "staging", staging),
        production_release=production,
        staging_release=staging,
        start=float(span.start),
        end=float(span.end),
    )


def latest_release(span: StatsSpan, pool: PoolName) -> str | None:
    """The release `pool` served last in the span; None if it served nothing."""
    for bucket in sorted(span.buckets, reverse=True):
        seen = [
            (counts.get("requests", 0), release)
            for (p, release), counts in span.buckets[bucket].items()
            if p == pool
        ]
        if seen:
            return max(seen)[1]
    return None


def window_of(span: StatsSpan, pool: PoolName, release: str) -> VersionWindow:
    total = VersionWindow()
    for counts in span.buckets.values():
        flat = counts.get((pool, release))
        if flat:
            try:
                total = total + from_flat(flat)
            except CountsError:
                continue  # a bucket written by hand that does not parse
    return total


def to_flat(window: VersionWindow) -> dict[str, int]:
    """A window as state/'s counter names: requests, status.5xx, upstream.reset, latency.17."""
    flat = {"requests": window.requests}
    flat.update({f"status.{k}": n for k, n in zip(STATUS_CLASSES, window.responses, strict=True)})
    flat.update({f"upstream.{k}": n for k, n in zip(UPSTREAM_ERRORS, window.upstream_errors, strict=True)})
    flat.update({f"latency.{i}": n for i, n in window.latency.to_sparse().items()})
    return {name: n for name, n in flat.items() if n}


def from_flat(flat: Mapping[str, int]) -> VersionWindow:
    nested: dict[str, dict[str, int]] = {"responses": {}, "upstream_errors": {}, "latency": {}}
    where = {"status": "responses", "upstream": "upstream_errors", "latency": "latency"}
    for name, n in flat.items():
        group, _, key = name.partition(".")
        if group in where:
            nested[where[group]][key] = n
    return VersionWindow.from_dict({"requests": flat.get("requests", 0), **nested})
