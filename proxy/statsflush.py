"""Once a second, the data path's per-version counters go to Redis: their deltas,
labelled with each pool's release, added into time buckets in one call.

Off the request path: the data path only increments its `VersionCounter`s. A batch
that fails stays pending and is sent again, under the same id, before anything
newer: state/versionstats.py adds a batch id once, so nothing is lost and nothing is
counted twice. Counts taken meanwhile wait in `fresh`, in the buckets they belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping

from proxy.analysis import VersionCounter, VersionWindow
from proxy.versionstats import to_flat
from state import POOLS, UNKNOWN_RELEASE, StateError, VersionStatsStore
from state.model import PoolName

log = logging.getLogger("proxy")

Label = tuple[str, str]  # (pool, release)


class StatsFlusher:
    def __init__(
        self,
        store: VersionStatsStore,
        counters: Mapping[str, VersionCounter],
        writer: str,
        *,
        interval_s: float = 1.0,
        release_refresh_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.counters = counters
        self.writer = writer
        self.interval_s = interval_s
        self.release_refresh_s = release_refresh_s
        self.clock = clock
        self.releases: dict[PoolName, str] = dict.fromkeys(POOLS, UNKNOWN_RELEASE)
        self.fresh: dict[int, dict[Label, VersionWindow]] = {}
        self.pending: tuple[str, dict[int, dict[Label, dict[str, int]]]] | None = None
        self.failures = 0  # flushes that failed, for the log and the tests
        self._releases_at = float("-inf")

    def collect(self) -> None:
        """Take what the counters hold into this second's bucket, under each pool's release."""
        bucket = self.store.bucket_of(self.clock())
        into = self.fresh.setdefault(bucket, {})
        for pool in POOLS:
            counter = self.counters.get(pool)
            if counter is None:
                continue
            delta = counter.take()
            if delta.requests or delta.errors or delta.latency.count or any(delta.responses):
                label = (pool, self.releases[pool])
                into[label] = into[label] + delta if label in into else delta
        if not into:
            del self.fresh[bucket]
        # Redis would expire these at once: keeping them would only grow during an outage.
        oldest = bucket - self.store.retention_s
        for stale in [b for b in self.fresh if b < oldest]:
            del self.fresh[stale]

    async def flush(self) -> bool:
        """Send the pending batch, then what is fresh; False (all kept) if Redis fails."""
        for _ in range(2):
            if self.pending is None:
                if not self.fresh:
                    return True
                batch = {
                    b: {label: to_flat(w) for label, w in counts.items()} for b, counts in self.fresh.items()
                }
                self.pending, self.fresh = (uuid.uuid4().hex, batch), {}
            batch_id, buckets = self.pending
            try:
                await self.store.add(self.writer, batch_id, buckets)
            except StateError as exc:
                self.failures += 1
                if self.failures == 1 or self.failures % 60 == 0:
                    log.warning(
                        "version stats not flushed, kept for the next try failures=%d: %s", self.failures, exc
                    )
                return False
            self.pending = None
        return True

    async def refresh_releases(self) -> None:
        try:
            self.releases = await self.store.releases()
        except StateError as exc:
            log.debug("releases not refreshed: %s", exc)
        self._releases_at = self.clock()

    async def step(self) -> None:
        if self.clock() - self._releases_at >= self.release_refresh_s:
            await self.refresh_releases()
        self.collect()
        await self.flush()

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                # Never let a bug here stop the counting for good: the counters keep it.
                log.exception("version stats flush failed")
            await asyncio.sleep(self.interval_s)

    async def final_flush(self, timeout_s: float = 2.0) -> None:
        """On stop: what the last second counted, if Redis answers in time."""
        self.collect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.flush()
