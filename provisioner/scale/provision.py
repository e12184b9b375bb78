"""One server in, one server out: the steps, and the clean-up when a step fails.

In: create, active, reachable, configure, health, register. The record is
written before the create and after every step, so whatever happens (a step
fails, the worker is stopped, the worker dies) the record says what may exist.
A failed step is cleaned up at once: out of the pool, destroyed, forgotten,
with the step's name in the audit log. Out: drain, destroy, forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from provisioner.cleanup import finish
from provisioner.configure import PLAYBOOKS, Configurer
from provisioner.drain import DrainResult, drain
from provisioner.errors import StepFailed
from provisioner.health import wait_healthy
from provisioner.notify import Notifier
from provisioner.scale.orphans import Orphan, judge
from provisioner.scale.provider import Machine, Provider
from provisioner.scale.serving import configure_and_serve
from state import ServerRecord, ServerRegistry, StateStore
from state.model import PoolName

log = logging.getLogger("provisioner")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Deadlines:
    active_s: float
    reachable_s: float
    health_s: float
    drain_s: float


@dataclass
class _Run:
    """What one provisioning has made so far: exactly what a clean-up must undo."""

    record: ServerRecord
    machine: Machine | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def served(self) -> bool:
        """In its pool before it failed (scale/serving.py notes "register"): drained, not cut off."""
        return "register" in self.timings


class Commits(Protocol):
    """The commit a new server of `pool` gets, as the app role's variables (empty: none).

    `provisioner.deploy.commits.CommitSource` is the one there is; it comes in through
    `provisioner.app`, so scaling never imports deploying."""

    def extravars(self, pool: PoolName) -> AbstractAsyncContextManager[dict[str, object]]: ...


class Provisioner:
    def __init__(
        self,
        *,
        provider: Provider,
        configurer: Configurer,
        store: StateStore,
        registry: ServerRegistry,
        notifier: Notifier,
        owner: str,
        name_prefix: str,
        deadlines: Deadlines,
        extravars: Mapping[str, object] | None = None,
        health_path: str = "/health",
        commits: Commits | None = None,
        orphan_grace_s: float = 900.0,
    ) -> None:
        self.provider = provider
        self.configurer = configurer
        self.store = store
        self.registry = registry
        self.notifier = notifier
        self.owner = owner
        self.name_prefix = name_prefix
        self.deadlines = deadlines
        self.extravars = dict(extravars or {})
        self.health_path = health_path
        # With deploy_repo: new servers get their pool's deployed commit.
        self.commits = commits
        self.orphan_grace_s = orphan_grace_s
        self._reported: set[str] = set()  # orphans already logged as left alone

    def new_id(self, pool: PoolName) -> str:
        return f"{self.name_prefix}-{pool[:4]}-{uuid.uuid4().hex[:8]}"

    async def provision(self, pool: PoolName, reason: str) -> ServerRecord:
        """Add one server to `pool`; StepFailed (after clean-up) names the step that failed."""
        now = time.time()
        record = ServerRecord(
            id=self.new_id(pool),
            pool=pool,
            provider=self.provider.name,
            state="provisioning",
            created_at=now,
            updated_at=now,
            owner=self.owner,
            step="create",
        )
        await self.registry.put(record)
        run = _Run(record)
        log.info(
            "provisioning %s for pool %s (%s) with provider %s", record.id, pool, reason, record.provider
        )
        try:
            await self._steps(run, pool)
        except asyncio.CancelledError:
            await self._undo(run, "stopped while provisioning")
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
            log.error("server %s: step %s failed: %s", run.record.id, run.record.step, error)
            cleaned = await self._undo(run, error)
            event = dict(server=run.record.id, pool=pool, step=run.record.step, error=error, cleaned=cleaned)
            await self.notifier.notify("server.failed", {**event, "served": run.served})
            raise StepFailed(run.record.id, run.record.step, exc, cleaned=cleaned) from exc
        total = time.time() - now
        log.info(
            "server %s is in pool %s at %s after %.1fs (%s)",
            run.record.id,
            pool,
            run.record.url,
            total,
            " ".join(f"{k}={v:.2f}s" for k, v in run.timings.items()),
        )
        await self.notifier.notify(
            "server.added",
            {
                "server": run.record.id,
                "pool": pool,
                "url": run.record.url,
                "reason": reason,
                "seconds": round(total, 2),
            },
        )
        return run.record

    async def _steps(self, run: _Run, pool: PoolName) -> None:
        p, d = self.provider, self.deadlines
        name = run.record.id
        generation = (await self.store.ensure_generation()).id
        machine = await self._step(run, "create", lambda: p.create(name, pool, generation=generation))
        run.machine = machine
        await self._save(run, ref=machine.ref)
        machine = await self._step(run, "active", lambda: p.wait_active(machine, d.active_s))
        run.machine = machine
        await self._save(run, address=machine.address, url=p.backend_url(machine))
        await self._step(run, "reachable", lambda: p.wait_reachable(machine, d.reachable_s))
        url = run.record.url
        # In the pool at its first healthy answer, its run going on (scale/serving.py).
        await configure_and_serve(
            self.configure_new(pool, name, machine),
            lambda timeout_s: self._health(url, timeout_s),
            lambda: self.store.add_backend(pool, url),
            lambda step: self._save(run, step=step),
            run.timings,
            health_s=d.health_s,
            run_s=self.configurer.timeout_s,
        )
        run.record = run.record.evolve(state="active", step="", timings=dict(run.timings))
        await self.registry.put(run.record)

    async def configure_new(self, pool: PoolName, name: str, machine: Machine) -> str:
        """Run the pool's playbook on a new server, with the commit last deployed to the
        pool if there is one (else the app's source tree); returns that commit, or ""."""
        commits: AbstractAsyncContextManager[dict[str, object]] = (
            contextlib.nullcontext({}) if self.commits is None else self.commits.extravars(pool)
        )
        async with commits as commit:
            await self.configurer.run(
                PLAYBOOKS[pool],
                name,
                self.provider.host_vars(machine),
                {**commit, **self.extravars},
                group=pool,
                fresh_os=not machine.image,  # the base image: a first run on a fresh OS
            )
            return str(commit.get("switchyard_app_sha", ""))

    async def _health(self, url: str, timeout_s: float) -> float:
        return await wait_healthy(url, path=self.health_path, timeout_s=timeout_s, interval_s=0.05)

    async def _step(self, run: _Run, step: str, work: Callable[[], Awaitable[T]]) -> T:
        await self._save(run, step=step)
        started = time.monotonic()
        result = await work()
        run.timings[step] = time.monotonic() - started
        return result

    async def _save(self, run: _Run, **changes: object) -> None:
        run.record = run.record.evolve(**changes)
        await self.registry.put(run.record)

    async def _undo(self, run: _Run, why: str) -> bool:
        return await finish(self._clean_up(run.record, run.machine, why, failed=True, served=run.served))

    async def _clean_up(
        self, record: ServerRecord, machine: Machine | None, why: str, *, failed: bool, served: bool = False
    ) -> bool:
        """Undo a server: out of the pool (drained, if it `served`), destroyed, forgotten.
        False (and the record marked cleanup_failed for the next worker) if any of that failed."""
        try:
            if record.url and served:
                await drain(self.store, record.pool, record.url, timeout_s=self.deadlines.drain_s)
            elif record.url:
                await self.store.remove_backend(record.pool, record.url)
            await self.provider.destroy(record.id, machine.ref if machine else record.ref)
            outcome = {"failed_step": record.step, "error": why[:500]} if failed else {"removed": why[:500]}
            await self.registry.remove(record.id, outcome=outcome)
            log.info("server %s destroyed and forgotten: %s", record.id, why)
            return True
        except Exception as exc:
            log.error("server %s: clean-up failed, will retry: %s", record.id, exc)
            try:
                await self.registry.put(
                    record.evolve(state="cleanup_failed", error=f"{why[:300]}; clean-up: {exc}"[:600])
                )
            except Exception as again:
                log.error("server %s: cannot record the failed clean-up: %s", record.id, again)
            return False

    async def retire(self, record: ServerRecord, reason: str) -> DrainResult:
        """Take a server out: drain it from its pool, destroy it, forget it."""
        record = record.evolve(state="draining", owner=self.owner, step="drain")
        await self.registry.put(record)
        log.info("retiring %s from pool %s: %s", record.id, record.pool, reason)
        result = DrainResult(True, 0.0, ())
        if record.url:
            result = await drain(self.store, record.pool, record.url, timeout_s=self.deadlines.drain_s)
        record = record.evolve(state="destroying", step="destroy")
        await self.registry.put(record)
        if not await finish(self._clean_up(record, None, f"retired: {reason}", failed=False)):
            raise StepFailed(record.id, "destroy", RuntimeError("clean-up failed"), cleaned=False)
        await self.notifier.notify(
            "server.removed",
            {
                "server": record.id,
                "pool": record.pool,
                "url": record.url,
                "reason": reason,
                "drained": result.drained,
            },
        )
        return result

    async def reconcile(self) -> list[str]:
        """Clean up what dead workers left: call only while holding the provisioning lock,
        when no other operation can be under way. Returns what was done."""
        done = []
        for record in await self.registry.all():
            if record.provider != self.provider.name or record.state == "active":
                continue
            why = f"left {record.state} at step {record.step or '-'} by {record.owner}"
            if await finish(self._clean_up(record, None, why, failed=True)):
                done.append(f"cleaned up {record.id} ({why})")
        for orphan in await self.orphans():
            machine = orphan.machine
            if orphan.keep:
                if machine.name not in self._reported:
                    self._reported.add(machine.name)
                    log.warning(
                        "left %s alone: no record, but %s (see `python -m provisioner list --orphans`)",
                        machine.name,
                        orphan.keep,
                    )
                continue
            await finish(self.provider.destroy(machine.name, machine.ref))
            log.warning("destroyed %s: made under this generation, but no record of it", machine.name)
            done.append(f"destroyed orphan {machine.name}")
        return done

    async def orphans(self) -> list[Orphan]:
        """This provider's servers that no record names, each with why it is kept, if it is."""
        known = {r.id for r in await self.registry.all()}
        state = await self.store.read_state()
        pooled = (*state.snapshot.production, *state.snapshot.staging)
        generation = None if state.generation is None else state.generation.id
        now = time.time()
        return [
            judge(m, generation=generation, pooled=pooled, now=now, grace_s=self.orphan_grace_s)
            for m in await self.provider.list_own()
            if m.name not in known
        ]
