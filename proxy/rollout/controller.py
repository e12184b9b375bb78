"""The rollout controller that runs inside every `proxy serve`.

Each proxy ticks; the one holding the lease leads: it sets each step's weight,
judges the step's window once it is due, and posts the notices. The others only
read the record (for their metrics and admin API) and try the lease: when the
leader dies its lease expires and the next proxy carries on from the record.
The record's revision makes sure a step is judged by one of them only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from proxy.analysis import JudgePolicy, VersionWindow, judge
from proxy.rollout import machine, operate
from proxy.rollout.apply import commit, reconcile
from proxy.rollout.machine import Transition
from proxy.rollout.model import Plan, Rollout, RolloutError, Status
from proxy.rollout.notify import Courier
from proxy.rollout.trigger import should_start
from state import DeployStore, Snapshot, StateError, StateStore
from state.rollouts import RolloutStore
from state.tasks import stop_tasks

log = logging.getLogger("proxy.rollout")


class Windows(Protocol):
    """Both versions' counts over one window (proxy/versionstats.py's VersionWindows)."""

    @property
    def production(self) -> VersionWindow: ...
    @property
    def staging(self) -> VersionWindow: ...


WindowReader = Callable[[float, float], Awaitable[Windows]]


class RolloutController:
    def __init__(
        self,
        rollouts: RolloutStore,
        store: StateStore,
        routing: Callable[[], Snapshot],
        windows: WindowReader,
        *,
        courier: Courier,
        instance_id: str,
        tick_s: float = 0.25,
        lease_s: float = 3.0,
        policy: JudgePolicy | None = None,
        clock: Callable[[], float] = time.time,
        on_deploy: tuple[DeployStore, Plan] | None = None,
    ) -> None:
        self.rollouts = rollouts
        self.store = store
        self.routing = routing  # the proxy's current snapshot (for the alert)
        self.windows = windows
        self.courier = courier
        self.instance_id = instance_id
        self.tick_s = tick_s
        self.lease_s = lease_s
        self.policy = policy or JudgePolicy()
        self.clock = clock
        self.on_deploy = on_deploy  # rollout_on_deploy: where staging's deploys are, and the plan
        self.current: Rollout | None = None  # the record as this proxy last read it
        self.leading = asyncio.Event()
        self.judged = 0  # steps this proxy judged (each exactly once across proxies)
        self._tasks: tuple[asyncio.Task[None], ...] = ()

    def start(self) -> None:
        self._tasks = (
            asyncio.create_task(self._run(), name="rollout"),
            asyncio.create_task(self.courier.run(self.leading), name="rollout-notices"),
        )

    async def stop(self) -> None:
        await stop_tasks(self._tasks, 5.0)
        await self.courier.close()
        if self.leading.is_set():
            with contextlib.suppress(StateError, TimeoutError):
                async with asyncio.timeout(1):
                    await self.rollouts.lease().release(self.instance_id)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except StateError as exc:
                # Not knowing whether it still holds the lease, it stops acting as the leader.
                self.leading.clear()
                log.warning("rollout controller: %s", exc)
            except RolloutError as exc:
                log.error("rollout controller: %s", exc)
            await asyncio.sleep(self.tick_s)

    async def tick(self) -> None:
        await self._lead()
        record = await self.rollouts.read()
        self.current = None if record is None else Rollout.from_json(record)
        r = self.current
        # An ended rollout is still reconciled: its last weight (0 on an abort) may be unwritten.
        if self.leading.is_set() and r is not None and (r.active or not r.applied):
            self.current = await self.advance(r) or r
        elif self.leading.is_set() and self.on_deploy is not None:
            await self._start_on_deploy(*self.on_deploy)

    async def _start_on_deploy(self, deploys: DeployStore, plan: Plan) -> None:
        latest = next(iter(await deploys.history("staging", 1)), None)
        if latest is not None and should_start(latest, self.current, self.clock()):
            try:
                self.current = await operate.start(self.rollouts, self.store, plan, latest.sha)
                log.info("rollout %s started by the deploy of %s to staging", self.current.id, latest.sha[:8])
            except RolloutError as exc:
                log.warning("no rollout for the deploy of %s to staging: %s", latest.sha[:8], exc)

    async def _lead(self) -> None:
        lease = self.rollouts.lease()
        if self.leading.is_set():
            if not await lease.refresh(self.instance_id, self.lease_s):
                log.warning("rollout lease lost: another proxy leads now")
                self.leading.clear()
        # Refresh too: after an error this proxy may still hold the lease it stopped trusting.
        elif await lease.acquire(self.instance_id, self.lease_s) or await lease.refresh(
            self.instance_id, self.lease_s
        ):
            log.info("rollout lease taken: this proxy leads rollouts")
            self.leading.set()

    async def advance(self, r: Rollout) -> Rollout | None:
        """One step of the machine, if one is due; None if another writer was first."""
        t = await self._event(r)
        if t is None:
            return await reconcile(self.rollouts, self.store, r)
        after = await commit(self.rollouts, self.store, r, t)
        if after is not None and after.history != r.history:
            self.judged += 1
            last = after.history[-1]
            took_ms = (last.at - last.end) * 1000  # reading the window and judging it
            log.info("rollout %s step %d judged in %.0f ms: %s", r.id, r.step, took_ms, last.explain)
        return after

    async def _event(self, r: Rollout) -> Transition | None:
        snap = self.routing()
        if r.status is Status.RUNNING and snap.alert is not None:
            return machine.alert(r, snap.alert.reason)
        now = self.clock()
        if machine.is_due(r, now):
            w = await self.windows(r.step_started, now)
            verdict = judge(w.staging, w.production, self.policy)
            return machine.judged(r, verdict, self.clock(), end=now)
        if r.status is Status.PROMOTING and r.deploy_request:
            result = await self.rollouts.deploy_result(r.deploy_request)
            if result is not None:
                return machine.deployed(r, bool(result.get("ok")), str(result.get("detail", "")))
        return None
