"""Where the dashboard reads per-version counters: the one place to change when the
per-version stats (`GET /stats/versions`) land. Today: this proxy's own `Stats`."""

from __future__ import annotations

from proxy.dashboard.series import Counters
from proxy.stats import LATENCY_BUCKETS_S, Stats
from state import POOLS

# The versions shown; answers the proxy gave itself (no backend) count as "proxy", not shown.
VERSIONS = POOLS


def read_counters(stats: Stats) -> dict[str, Counters]:
    """Each routed version's counters since this proxy started (memory only, no I/O)."""
    out: dict[str, Counters] = {}
    for version in VERSIONS:
        by_class = stats.by_class.get(version)
        if by_class is None:
            continue
        latency = stats.latency_counts.get(version)
        out[version] = Counters(
            requests=sum(by_class),
            errors=by_class[5],
            bounds=LATENCY_BUCKETS_S,
            latency=tuple(latency) if latency is not None else (0,) * (len(LATENCY_BUCKETS_S) + 1),
        )
    return out
