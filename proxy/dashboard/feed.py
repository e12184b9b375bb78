"""One feed per proxy for every open page: it samples the counters each second, wakes
at once when the routing snapshot changes, and pushes one serialised state to every
subscriber. Redis is read on a timer shared by all pages, not per page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from proxy.dashboard.counters import read_counters
from proxy.dashboard.gather import read_slow
from proxy.dashboard.series import History
from proxy.dashboard.view import Live, Slow, page_state
from proxy.snapshots import SnapshotFollower
from proxy.stats import Stats
from state import StateStore
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
        *,
        tick_s: float = 1.0,
        slow_s: float = 5.0,
        history: History | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.snapshots = snapshots
        self.stats = stats
        self.inflight = inflight
        self.tick_s = tick_s
        self.slow_s = slow_s
        self.history = history or History()
        self.clock = clock
        self.slow = Slow()
        # Whether this proxy serves GET /rollout: the page asks it only then, so a proxy
        # without rollouts costs the page no failed request (and no console error).
        self.rollout_api = False
        self.subscribers: set[Subscription] = set()
        self._slow_wanted = asyncio.Event()
        self._tried_at = float("-inf")  # loop time of the last slow read begun
        self._tasks: tuple[asyncio.Task[None], ...] = ()

    def start(self) -> None:
        self._tasks = (
            asyncio.create_task(self._sample_forever(), name="dashboard-feed"),
            asyncio.create_task(self._read_forever(), name="dashboard-reads"),
        )

    async def stop(self) -> None:
        for sub in list(self.subscribers):
            sub.offer(None)
        self.subscribers.clear()
        await stop_tasks(self._tasks, 5.0)

    def subscribe(self) -> Subscription:
        sub = Subscription()
        sub.offer(sse("hello", {**self.state(), "history": self.history.to_json()}))
        self.subscribers.add(sub)
        self._slow_wanted.set()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def live(self) -> Live:
        snapshots = self.snapshots
        outliers = self.stats.outliers
        now = asyncio.get_running_loop().time()
        ejected = {} if outliers is None else {b: round(t - now, 1) for b, t in outliers.ejected.items()}
        return Live(snapshots.snapshot, snapshots.stale, snapshots.last_error, ejected, dict(self.inflight))

    def state(self) -> dict[str, Any]:
        state = page_state(self.live(), self.slow, self.history, self.clock())
        state["rollout_api"] = self.rollout_api
        state["tail"] = {v: points[-1].to_json() for v, points in self.history.points.items() if points}
        return state

    def publish(self) -> None:
        if not self.subscribers:
            return
        message = sse("state", self.state())
        for sub in self.subscribers:
            sub.offer(message)

    async def _sample_forever(self) -> None:
        while True:
            version = self.snapshots.snapshot.version
            with contextlib.suppress(TimeoutError):
                await self.snapshots.wait_for(version + 1, self.tick_s)
            try:
                self.history.add(self.clock(), read_counters(self.stats))
                self.publish()
            except Exception:  # a bad value must not end the feed for every page
                log.exception("dashboard feed failed to publish")

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
