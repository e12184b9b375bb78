"""One feed per proxy for every open page: it reads the per-version counts each second,
wakes at once when the routing snapshot changes, and pushes one serialised state to
every subscriber. Redis is read on timers shared by all pages, not per page, and only
while a page watches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from proxy.dashboard.counters import VERSIONS, CountReader, hour_for
from proxy.dashboard.gather import read_slow
from proxy.dashboard.view import Live, Slow, page_state
from proxy.snapshots import SnapshotFollower
from proxy.stats import Stats
from state import StateError, StateStore, VersionStatsStore
from state.tasks import stop_tasks

log = logging.getLogger("proxy.dashboard")

QUEUE_SIZE = 8  # a page that falls this far behind loses its oldest updates, not the proxy
MIN_READ_GAP_S = 1.0


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, message: str | None) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(message)


def sse(event: str, data: Mapping[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Feed:
    def __init__(
        self,
        store: StateStore,
        snapshots: SnapshotFollower,
        stats: Stats,
        inflight: Mapping[str, int],
        counts: VersionStatsStore,
        *,
        tick_s: float = 1.0,
        slow_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.snapshots = snapshots
        self.stats = stats
        self.inflight = inflight
        self.tick_s = tick_s
        self.slow_s = slow_s
        self.clock = clock
        self.slow = Slow()
        self.hour = hour_for(counts)
        self.counts = CountReader(counts)
        self.counts_error: str | None = None
        self._changed: set[int] = set()  # buckets read anew since the last publish
        # Whether this proxy serves GET /rollout: the page asks it only then, so a proxy
        # without rollouts costs the page no failed request (and no console error).
        self.rollout_api = False
        self.subscribers: set[Subscription] = set()
        self._slow_wanted = asyncio.Event()
        self._counts_wanted = asyncio.Event()
        self._tried_at = float("-inf")  # loop time of the last slow read begun
        self._tasks: tuple[asyncio.Task[None], ...] = ()

    def start(self) -> None:
        self._tasks = (
            asyncio.create_task(self._follow_forever(), name="dashboard-feed"),
            asyncio.create_task(self._count_forever(), name="dashboard-counts"),
            asyncio.create_task(self._read_forever(), name="dashboard-reads"),
        )

    async def stop(self) -> None:
        for sub in list(self.subscribers):
            sub.offer(None)
        self.subscribers.clear()
        await stop_tasks(self._tasks, 5.0)

    def subscribe(self) -> Subscription:
        sub = Subscription()
        now = self.clock()
        history = {v: [p.to_json() for p in self.hour.points(v, now)] for v in VERSIONS}
        sub.offer(sse("hello", {**self.state(), "history": history}))
        self.subscribers.add(sub)
        self._slow_wanted.set()
        self._counts_wanted.set()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def live(self) -> Live:
        snapshots = self.snapshots
        outliers = self.stats.outliers
        now = asyncio.get_running_loop().time()
        ejected = {} if outliers is None else {b: round(t - now, 1) for b, t in outliers.ejected.items()}
        return Live(snapshots.snapshot, snapshots.stale, snapshots.last_error, ejected, dict(self.inflight))

    def state(self, changed: set[int] | None = None) -> dict[str, Any]:
        """What every page is sent; `tail` holds the points of the `changed` buckets."""
        now = self.clock()
        state = page_state(self.live(), self.slow, self.hour, now)
        state["rollout_api"] = self.rollout_api
        state["counts_error"] = self.counts_error
        state["tail"] = {v: [p.to_json() for p in self.hour.points(v, now, changed or ())] for v in VERSIONS}
        return state

    def publish(self) -> None:
        if not self.subscribers:
            return
        changed, self._changed = self._changed, set()
        message = sse("state", self.state(changed))
        for sub in self.subscribers:
            sub.offer(message)

    async def _follow_forever(self) -> None:
        while True:
            version = self.snapshots.snapshot.version
            with contextlib.suppress(TimeoutError):
                await self.snapshots.wait_for(version + 1, self.tick_s)
            if self.snapshots.snapshot.version == version:
                continue  # the counts' reads publish each second
            try:
                self.publish()
            except Exception:  # a bad value must not end the feed for every page
                log.exception("dashboard feed failed to publish")

    async def _count_forever(self) -> None:
        read_at = float("-inf")  # loop time of the last read begun
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick_s):
                    await self._counts_wanted.wait()
            self._counts_wanted.clear()
            # However many pages watch, and however often they open: one read a tick.
            now = asyncio.get_running_loop().time()
            if not self.subscribers or now - read_at < self.tick_s:
                continue
            read_at = now
            try:
                await self._count_once()
                self.publish()
            except Exception:  # as in sampling: the feed outlives a bad read
                log.exception("dashboard counts failed")
                self.counts_error = "the dashboard's counts failed: see the proxy's log"

    async def _count_once(self) -> None:
        try:
            async with asyncio.timeout(max(2 * self.tick_s, 2.0)):
                self._changed |= await self.counts.read(self.hour, self.clock())
            self.counts_error = None
        except TimeoutError:
            self.counts_error = "Redis did not answer the counts' read in time"
        except StateError as exc:
            if self.counts_error is None:  # once an outage, not once a second
                log.warning("dashboard counts not read: %s", exc)
            self.counts_error = "the counts could not be read from Redis: see the proxy's log"

    async def _read_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.slow_s):
                    await self._slow_wanted.wait()
            self._slow_wanted.clear()
            # A page that opens asks for a read; many opening at once share one.
            now = asyncio.get_running_loop().time()
            if not self.subscribers or now - self._tried_at < MIN_READ_GAP_S:
                continue
            self._tried_at = now
            try:
                await self._read_once()
                self.publish()
            except Exception:  # as in sampling: the feed outlives a bad read
                log.exception("dashboard reads failed")
                self.slow = replace(self.slow, error="the dashboard's reads failed: see the proxy's log")

    async def _read_once(self) -> None:
        try:
            async with asyncio.timeout(max(self.slow_s, 2.0)):
                self.slow = await read_slow(self.store, self.slow)
        except TimeoutError:
            self.slow = replace(self.slow, error="Redis did not answer in time")
