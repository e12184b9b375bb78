"""The proxy's routing snapshot, kept current from Redis's change notices.

Requests read `SnapshotFollower.snapshot` and never wait on Redis. A listener turns each
published change into a "dirty" mark; one reader coalesces marks into a single
atomic snapshot read, and also re-reads on a timer so a write that bypassed
`state/` (a hand-typed SET) still arrives. While Redis is unreachable the last
snapshot keeps serving and both tasks retry with capped, jittered backoff.

Proxies are the routing state's replicas. When the state's generation vanishes (Redis
restarted empty, a FLUSHALL), the follower keeps routing from its snapshot, reports
`state_lost`, and writes the snapshot back under a new generation (`StateStore.restore`,
one transaction: exactly one proxy's restore lands); every other proxy adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from state import Snapshot, State, StateError, StateStore
from state.generation import verdict
from state.tasks import stop_tasks

log = logging.getLogger("proxy.state")


class Backoff:
    def __init__(self, first_s: float = 0.05, cap_s: float = 2.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self.next_s = first_s

    def reset(self) -> None:
        self.next_s = self.first_s

    def delay(self) -> float:
        delay = self.next_s * random.uniform(0.5, 1.0)
        self.next_s = min(self.cap_s, self.next_s * 2)
        return delay


class SnapshotFollower:
    def __init__(
        self,
        store: StateStore,
        listener_store: StateStore,
        *,
        resync_interval_s: float,
        restore_lost_state: bool = True,
    ) -> None:
        self.store = store
        # Pub/sub gets its own client: it blocks on reads without a socket timeout.
        self.listener_store = listener_store
        self.resync_interval_s = resync_interval_s
        self.snapshot = Snapshot()
        self.loaded = False
        self.stale = True
        self.confirmed_at: float | None = None  # monotonic time of the last good read
        self.last_error: str | None = None
        self.generation: str | None = None  # of the snapshot in use (None: never had one)
        self.state_lost = False
        self.restore_lost_state = restore_lost_state
        self.restores = 0  # restores this proxy wrote
        self._dirty = asyncio.Event()
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, *, first_read_timeout_s: float = 2.0) -> None:
        """Read once (briefly) so the first requests route, then keep up to date."""
        with contextlib.suppress(StateError, TimeoutError):
            async with asyncio.timeout(first_read_timeout_s):
                await self._read()
        if not self.loaded:
            log.warning("starting without routing state: Redis unreachable (%s); retrying", self.last_error)
        self._tasks = [
            asyncio.create_task(self._listen(), name="state-listener"),
            asyncio.create_task(self._reader(), name="state-reader"),
        ]

    async def stop(self, timeout_s: float = 5.0) -> None:
        await stop_tasks(self._tasks, timeout_s)
        self._tasks = []

    def age_s(self) -> float:
        return float("inf") if self.confirmed_at is None else time.monotonic() - self.confirmed_at

    async def wait_for(self, version: int, timeout_s: float) -> bool:
        """Wait until the snapshot reaches `version` (used by writers on this process)."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: self.snapshot.version >= version)
        return True

    async def _read(self) -> None:
        try:
            found = await self.store.read_state()
            state: State | None = found
            if self.loaded and verdict(self.generation, found.generation) == "restore":
                state = await self._recover(found)
        except StateError as exc:
            self._mark_stale(str(exc))
            raise
        if state is None:
            # Redis answers, but what it holds is not the state: route on from the snapshot.
            self.stale = False
            self.last_error = None
            return
        self.state_lost = False
        self.generation = None if state.generation is None else state.generation.id
        snap = state.snapshot
        if self.loaded and snap.version < self.snapshot.version:
            log.error(
                "routing state went back from version %d to %d: Redis lost its data"
                " (restarted without persistence?); following it",
                self.snapshot.version,
                snap.version,
            )
        if snap != self.snapshot:
            if self.loaded:
                log.info("routing state changed version=%d", snap.version)
            self.snapshot = snap
        self.loaded = True
        if self.stale and self.confirmed_at is not None:
            log.warning("Redis reachable again: routing state resynced version=%d", snap.version)
        self.stale = False
        self.last_error = None
        self.confirmed_at = time.monotonic()
        async with self._changed:
            self._changed.notify_all()

    async def _recover(self, found: State) -> State | None:
        """Write the snapshot back (unless another proxy has), then the state to adopt;
        None while the state is still lost (this proxy does not restore, or a race)."""
        if not self.state_lost:
            log.error(
                "routing state lost: generation %s is gone (found %s); routing on from the"
                " snapshot version=%d",
                self.generation,
                "none" if found.generation is None else found.generation.id,
                self.snapshot.version,
            )
        self.state_lost = True
        if not self.restore_lost_state or self.generation is None:
            return None
        change = await self.store.restore(self.snapshot, self.generation)
        if change.changed:
            self.restores += 1
            log.warning(
                "restored the routing state from this proxy's snapshot as generation %s",
                change.after["generation"]["id"],  # type: ignore[index]
            )
        state = await self.store.read_state()
        return state if verdict(self.generation, state.generation) == "follow" else None

    def _mark_stale(self, error: str) -> None:
        if not self.stale:
            log.warning("Redis unreachable, serving the last snapshot: %s", error)
        self.stale = True
        self.last_error = error

    async def _reader(self) -> None:
        backoff = Backoff()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_interval_s):
                    await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._read()
            except StateError:
                await asyncio.sleep(backoff.delay())
                self._dirty.set()
            else:
                backoff.reset()

    async def _listen(self) -> None:
        backoff = Backoff()
        while True:
            try:
                async for _notice in self.listener_store.change_notices():
                    # The first item is the subscription itself: re-read then,
                    # so nothing published while we were away is missed.
                    backoff.reset()
                    self._dirty.set()
            except StateError as exc:
                self._mark_stale(str(exc))
            await asyncio.sleep(backoff.delay())
