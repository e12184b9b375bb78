"""Draining a backend: out of the pool, then wait until no proxy still uses it; and
waiting until every proxy routes from a change just written.

A proxy is done with a removed backend once its heartbeat reports a routing
state version at or past the removal (so it no longer picks it) and zero
requests in flight to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
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
    late = set(behind(instances, version))
    return tuple(i.id for i in instances if i.id in late or _busy(i.info.get("inflight"), url))


def _busy(inflight: object, url: str) -> bool:
    count = inflight.get(url) if isinstance(inflight, Mapping) else 0
    return isinstance(count, int) and not isinstance(count, bool) and count > 0


async def drain(
    store: StateStore, pool: PoolName, url: str, *, timeout_s: float, interval_s: float = 0.1
) -> DrainResult:
    await store.remove_backend(pool, url)
    # The version after the removal: a later write only makes the wait a little longer.
    version = (await store.read_snapshot()).version
    result = await _wait(store, lambda found: still_using(found, url, version), timeout_s, interval_s)
    if not result.drained:
        log.warning(
            "drain of %s: deadline after %.1fs, still in use by %s",
            url,
            result.waited_s,
            ", ".join(result.waiting_on),
        )
    return result


async def until_routed(
    store: StateStore, what: str, *, timeout_s: float, say: Callable[[str], None], interval_s: float = 0.1
) -> DrainResult:
    """Wait until every live proxy routes from the state as it is now (a new preview, say).

    A write is in Redis at once but reaches each proxy by pub/sub: a URL said to the user
    before then can answer 404 for a moment. Past the deadline, say who is behind.
    """
    version = (await store.read_snapshot()).version
    result = await _wait(store, lambda found: behind(found, version), timeout_s, interval_s)
    if not result.drained:
        say(f"{what}: not yet routed by {', '.join(result.waiting_on)} after {result.waited_s:.0f}s")
    return result


async def until_let_go(
    store: StateStore, urls: Sequence[str], version: int, *, timeout_s: float, interval_s: float = 0.1
) -> DrainResult:
    """Wait until every live proxy routes from `version` or later and has no request in
    flight to any of `urls` (a warm switch's previous ports, still running)."""

    def pending(found: Sequence[InstanceInfo]) -> tuple[str, ...]:
        return tuple(sorted({proxy for url in urls for proxy in still_using(found, url, version)}))

    return await _wait(store, pending, timeout_s, interval_s)


def behind(instances: Sequence[InstanceInfo], version: int) -> tuple[str, ...]:
    """The proxies whose heartbeat reports a routing state older than `version`."""
    return tuple(i.id for i in instances if not isinstance(v := i.info.get("version"), int) or v < version)


async def _wait(
    store: StateStore,
    pending: Callable[[Sequence[InstanceInfo]], tuple[str, ...]],
    timeout_s: float,
    interval_s: float,
) -> DrainResult:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        waiting = pending(await store.instances())
        waited = loop.time() - start
        if not waiting or waited >= timeout_s:
            return DrainResult(not waiting, waited, waiting)
        await asyncio.sleep(interval_s)
