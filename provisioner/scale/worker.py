"""The worker: serves scale requests, retires idle servers, one operation at a time.

Every operation (a scale-up, a scale-in, a manual up or down) runs under the
provisioning lock in Redis, which the worker keeps alive while it works and
gives up when done; a worker that loses it stops its operation (which cleans
up after itself). Whoever takes the lock first tidies what dead workers left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from provisioner.cleanup import finish
from provisioner.errors import StepFailed
from provisioner.scale.policy import POOL_ROLE, PolicyConfig, PoolView, decide_scale_in, decide_scale_up
from provisioner.scale.provision import Provisioner
from state import (
    POOLS,
    HostStore,
    ScaleQueue,
    ScaleRequest,
    ServerRecord,
    ServerRegistry,
    StateError,
    StateStore,
)
from state.model import PoolName
from state.tasks import stop_tasks

log = logging.getLogger("provisioner")
Outcome = dict[str, object]
LOCK_POLL_S = 0.5
ERROR_BACKOFF_S = 2.0
# A stopped operation gets this long to clean up after itself.
STOP_GRACE_S = 120.0


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    consumer: str  # this worker's name in the consumer group and on the lock
    lock_ttl_s: float
    lock_wait_s: float
    reclaim_idle_s: float
    scale_in_check_s: float
    destroy_on_exit: bool


class Worker:
    def __init__(
        self,
        *,
        provisioner: Provisioner,
        store: StateStore,
        registry: ServerRegistry,
        queue: ScaleQueue,
        hosts: HostStore,
        policy: PolicyConfig,
        settings: WorkerSettings,
    ) -> None:
        self.provisioner = provisioner
        self.store = store
        self.registry = registry
        self.queue = queue
        self.hosts = hosts
        self.policy = policy
        self.settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set. An operation under way is then stopped, not finished:
        it cleans up after itself and its request stays pending for another worker. With
        destroy_on_exit, every server of this provider is retired before returning."""
        serving = asyncio.create_task(self.serve_forever(), name="serve")
        waiting = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await finish(stop_tasks([serving, waiting], STOP_GRACE_S))
        if serving.done() and not serving.cancelled():
            error = serving.exception()
            if error is not None:
                raise error
        if self.settings.destroy_on_exit:
            await self.retire_all("the worker stopped (destroy_on_exit)")

    async def serve_forever(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        next_check = loop.time() + s.scale_in_check_s
        log.info(
            "worker %s serving scale requests with provider %s", s.consumer, self.provisioner.provider.name
        )
        while True:
            try:
                await self.queue.ensure_group()
                for req in await self.queue.claim(
                    s.consumer, block_ms=500, reclaim_idle_ms=int(s.reclaim_idle_s * 1000)
                ):
                    await self.serve(req)
                if loop.time() >= next_check:
                    await self.check_scale_in()
                    next_check = loop.time() + s.scale_in_check_s
            except StateError as exc:
                log.error("worker %s: %s; retrying in %.0fs", s.consumer, exc, ERROR_BACKOFF_S)
                await asyncio.sleep(ERROR_BACKOFF_S)

    async def serve(self, req: ScaleRequest) -> Outcome:
        log.info("scale request %s for pool %s from %s: %s", req.request, req.pool, req.by, req.reason)
        outcome = await self.locked(lambda: self.scale_up(req.pool, req.reason), req=req)
        outcome["request"] = req.request
        await self.queue.done(req, outcome)
        log.info("scale request %s: %s", req.request, outcome.get("result"))
        return outcome

    async def view(self, pool: PoolName) -> PoolView:
        snapshot = await self.store.read_snapshot()
        servers = await self.registry.all()
        return PoolView(pool, snapshot.pool(pool), tuple(servers), await self.registry.marks(pool))

    async def scale_up(self, pool: PoolName, reason: str, *, by_hand: bool = False) -> Outcome:
        """Call under the lock."""
        for note in await self.provisioner.reconcile():
            log.warning("%s", note)
        decision = decide_scale_up(await self.view(pool), self.policy, time.time(), by_hand=by_hand)
        if not decision.act:
            log.info("not scaling %s up: %s", pool, decision.reason)
            return {"result": "refused", "reason": decision.reason}
        # Every attempt starts the cooldown, so a failing one is not retried in a tight loop.
        await self.registry.mark_scaled(pool, "up")
        try:
            record = await self.provisioner.provision(pool, reason)
        except StepFailed as exc:
            return {
                "result": "failed",
                "server": exc.server_id,
                "step": exc.step,
                "error": str(exc.cause)[:500],
            }
        return {"result": "added", "server": record.id, "url": record.url, "timings": dict(record.timings)}

    async def check_scale_in(self) -> Outcome | None:
        """Retire one idle server if the policy says so; None if the lock was busy."""
        outcome = await self.locked(self._scale_in, req=None, wait=False)
        return None if outcome.get("result") == "busy" else outcome

    async def _scale_in(self) -> Outcome:
        for note in await self.provisioner.reconcile():
            log.warning("%s", note)
        for pool in POOLS:
            now = time.time()
            view = await self.view(pool)
            cpu = await self._cpu(pool, now)
            decision = decide_scale_in(view, self.policy, now, cpu, provider=self.provisioner.provider.name)
            if not decision.act or decision.target is None:
                log.debug("not scaling %s in: %s", pool, decision.reason)
                continue
            return await self._retire(decision.target, decision.reason, mark=True)
        return {"result": "none"}

    async def _cpu(self, pool: PoolName, now: float) -> dict[str, list[tuple[float, float]]]:
        since = now - self.policy.scale_in_window_s - self.policy.sample_max_gap_s
        found = {}
        for host in await self.hosts.hosts():
            if host.role == POOL_ROLE[pool]:
                found[host.host] = [
                    (s.at, s.cpu_percent) for s in await self.hosts.history(host.host, since=since)
                ]
        return found

    async def _retire(self, record: ServerRecord, reason: str, *, mark: bool) -> Outcome:
        try:
            result = await self.provisioner.retire(record, reason)
        except StepFailed as exc:
            return {"result": "failed", "server": record.id, "step": exc.step, "error": str(exc.cause)[:500]}
        if mark:
            await self.registry.mark_scaled(record.pool, "down")
        return {
            "result": "removed",
            "server": record.id,
            "url": record.url,
            "drained": result.drained,
            "drain_s": round(result.waited_s, 2),
        }

    async def down(self, record: ServerRecord, reason: str) -> Outcome:
        return await self.locked(lambda: self._retire(record, reason, mark=False))

    async def retire_all(self, reason: str) -> list[Outcome]:
        mine = [r for r in await self.registry.all() if r.provider == self.provisioner.provider.name]
        return [await self.down(r, reason) for r in mine]

    async def _acquire(self, req: ScaleRequest | None, wait: bool) -> bool:
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (s.lock_wait_s if wait else 0.0)
        while not await self.registry.acquire_lock(s.consumer, s.lock_ttl_s):
            if loop.time() >= deadline:
                return False
            if req is not None:
                await self.queue.touch(req, s.consumer)
            await asyncio.sleep(LOCK_POLL_S)
        return True

    async def locked(
        self, work: Callable[[], Awaitable[Outcome]], *, req: ScaleRequest | None = None, wait: bool = True
    ) -> Outcome:
        """Run `work` holding the provisioning lock, kept alive (with `req`) until it ends."""
        if not await self._acquire(req, wait):
            holder = await self.registry.lock_holder()
            return {"result": "busy", "reason": f"the provisioning lock is held by {holder}"}
        job: asyncio.Task[Outcome] = asyncio.ensure_future(work())
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep(job, req, lost), name="lock-keeper")
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if lost.is_set() and job.cancelled() and (me is None or not me.cancelling()):
                return {"result": "failed", "reason": "lost the provisioning lock; the operation was undone"}
            raise
        finally:
            # Shielded: a stop that keeps cancelling must not cut the clean-up short.
            await finish(self._end(job, keeper))

    async def _end(self, job: asyncio.Task[Outcome], keeper: asyncio.Task[None]) -> None:
        await stop_tasks([job], STOP_GRACE_S)
        await stop_tasks([keeper], 5.0)
        try:
            await self.registry.release_lock(self.settings.consumer)
        except StateError as exc:
            log.warning("could not release the provisioning lock (it expires by itself): %s", exc)

    async def _keep(self, job: asyncio.Task[Outcome], req: ScaleRequest | None, lost: asyncio.Event) -> None:
        s = self.settings
        while not job.done():
            await asyncio.sleep(s.lock_ttl_s / 3)
            try:
                held = await self.registry.refresh_lock(s.consumer, s.lock_ttl_s)
                if req is not None:
                    await self.queue.touch(req, s.consumer)
            except StateError as exc:
                # Redis is away: the lock may expire. Keep going; the next refresh tells.
                log.warning("cannot refresh the provisioning lock: %s", exc)
                continue
            if not held:
                log.error("worker %s lost the provisioning lock: stopping the operation", s.consumer)
                lost.set()
                job.cancel()
                return
