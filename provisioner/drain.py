"""Draining a backend: out of the pool, then wait until no proxy still uses it.

A proxy is done with a removed backend once its heartbeat reports a routing
state version at or past the removal (so it no longer picks it) and zero
requests in flight to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from state import InstanceInfo, StateStore
from state.model import PoolName

log = logging.getLogger("provisioner")


@dataclass(frozen=True, slots=True)
class DrainResult:
    drained: bool  # False: the deadline came first
    waited_s: float
    waiting_on: tuple[str, ...]  # proxies still using the backend at the end


def still_using(instances: Sequence[InstanceInfo], url: str, version: int) -> tuple[str, ...]:
    """The proxies that may still send requests to `url` after the removal at `version`."""
    waiting = []
    for inst in instances:
        seen = inst.info.get("version")
        inflight = inst.info.get("inflight")
        behind = not isinstance(seen, int) or seen < version
        busy = isinstance(inflight, Mapping) and _count(inflight.get(url)) > 0
        if behind or busy:
            waiting.append(inst.id)
    return tuple(waiting)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def drain(
    store: StateStore, pool: PoolName, url: str, *, timeout_s: float, interval_s: float = 0.1
) -> DrainResult:
    await store.remove_backend(pool, url)
    # The version after the removal: a later write only makes the wait a little longer.
    version = (await store.read_snapshot()).version
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        waiting = still_using(await store.instances(), url, version)
        waited = loop.time() - start
        if not waiting:
            return DrainResult(True, waited, ())
        if waited >= timeout_s:
            log.warning(
                "drain of %s: deadline after %.1fs, still in use by %s", url, waited, ", ".join(waiting)
            )
            return DrainResult(False, waited, waiting)
        await asyncio.sleep(interval_s)
