"""The per-environment deploy lock, held while an operation runs.

Taken within a deadline (a second push waits for the first deploy), kept alive while
the operation runs, released after. An operation whose lock is lost (Redis was
unreachable for longer than the lock lives) is cancelled: another deploy may start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from provisioner.errors import DeployError
from state import DeployStore, StateError
from state.model import PoolName
from state.tasks import stop_tasks

log = logging.getLogger("provisioner.deploy")
T = TypeVar("T")
POLL_S = 0.2


async def locked(
    deploys: DeployStore,
    env: PoolName,
    actor: str,
    op: Callable[[], Awaitable[T]],
    *,
    ttl_s: float,
    wait_s: float,
    say: Callable[[str], None],
) -> T:
    holder = f"{actor}:{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    told = False
    while not await deploys.acquire_lock(env, holder, ttl_s):
        other = await deploys.lock_holder(env)
        if loop.time() >= deadline:
            raise DeployError(
                f"another {env} deploy ({other or 'unknown'}) held the lock for over {wait_s:.0f}s:"
                " try again later"
            )
        if not told:
            say(f"waiting for the {env} deploy under way ({other or 'unknown'}) to finish")
            told = True
        await asyncio.sleep(POLL_S)
    work = asyncio.ensure_future(op())
    lost = asyncio.Event()
    keeper = asyncio.create_task(
        _keep(deploys, env, holder, ttl_s, work=work, lost=lost), name=f"deploy-lock-{env}"
    )
    try:
        return await work
    except asyncio.CancelledError:
        if lost.is_set():
            raise DeployError(
                f"lost the {env} deploy lock (Redis unreachable?): the deploy was stopped"
            ) from None
        raise
    finally:
        await stop_tasks([keeper], 5.0)
        with contextlib.suppress(StateError):
            await deploys.release_lock(env, holder)


async def _keep(
    deploys: DeployStore,
    env: PoolName,
    holder: str,
    ttl_s: float,
    *,
    work: asyncio.Future[T],
    lost: asyncio.Event,
) -> None:
    while not work.done():
        await asyncio.sleep(ttl_s / 3)
        try:
            still = await deploys.refresh_lock(env, holder, ttl_s)
        except StateError as exc:
            log.warning("cannot refresh the %s deploy lock: %s", env, exc)
            continue
        if not still:
            log.error("lost the %s deploy lock; stopping the deploy", env)
            lost.set()
            work.cancel()
            return
