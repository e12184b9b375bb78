"""Where the dashboard reads per-version counters: the buckets every proxy adds its
counts into once a second (state/versionstats.py, the same `GET /stats/versions` and
`proxy stats` read), so the page covers every proxy and outlives a restart.

The feed calls `read` at most once a second, for all its pages: the whole hour on the
first call and once a minute, else only the last buckets, where counts still land."""

from __future__ import annotations

from proxy.dashboard.series import HOUR_S, Hour
from state import POOLS, VersionStatsStore

# The versions shown; answers the proxy gave itself (no backend) are not counted.
VERSIONS = POOLS
# A proxy adds its counts a second or so after taking them: each read goes back this far.
LATE_S = 20.0
# A proxy that could not reach Redis adds its held counts later, into older buckets:
# the whole hour is read again this often to show them.
FULL_EVERY_S = 60.0
# Buckets per pipeline: the hour (361 HGETALLs, about 33,000 values at 10 s buckets) is
# parsed on the loop the data path shares, which is served between slices. Measured by
# `python -m bench.dashread` (idle 2-core VM): with redis-py's Python parser the hour took
# 325 ms and stalled the loop 29 ms per slice of 30; with hiredis (requirements.txt)
# 61 ms and 2.2 ms, and in slices of 10, 66 ms and 1.6 ms.
SLICE_BUCKETS = 10


def hour_for(stats: VersionStatsStore) -> Hour:
    """An hour of `stats`' buckets, or all it keeps if that is less."""
    return Hour(stats.bucket_s, min(HOUR_S, float(stats.retention_s)))


class CountReader:
    def __init__(
        self,
        stats: VersionStatsStore,
        full_every_s: float = FULL_EVERY_S,
        slice_buckets: int = SLICE_BUCKETS,
    ) -> None:
        self.stats = stats
        self.full_every_s = full_every_s
        self.slice_buckets = slice_buckets
        self.reads = 0
        self._read_at = float("inf")  # none yet: the first read is the whole hour
        self._full_at = float("-inf")

    async def read(self, hour: Hour, now: float) -> set[int]:
        """Read the buckets into `hour`, newest first; returns those that changed."""
        bucket_s = self.stats.bucket_s
        since = min(self._read_at, now) - max(LATE_S, 2.0 * bucket_s)
        full = now - self._full_at >= self.full_every_s or now - since >= hour.span_s
        first = self.stats.bucket_of(now - hour.span_s if full else since)
        end = self.stats.bucket_of(now) + bucket_s
        changed: set[int] = set()
        while end > first:
            start = max(first, end - self.slice_buckets * bucket_s)
            changed |= hour.update(await self.stats.read(start, end), now)
            end = start
        self.reads += 1
        self._read_at = now
        if full:
            self._full_at = now
        return changed
