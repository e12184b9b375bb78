"""The dashboard's slow reads from Redis, through `state/`: managed servers, monitored
hosts with their rules, deploy history. Made by the feed every few seconds while a page
watches, never once per browser request."""

from __future__ import annotations

import time
from dataclasses import replace

from proxy.dashboard.view import HostView, Slow
from state import (
    POOLS,
    DeployRecord,
    DeployStore,
    HostStore,
    InvalidValue,
    MonitorStore,
    ServerRegistry,
    StateError,
    StateStore,
    monitored_hosts,
)

DEPLOYS_SHOWN = 10


async def hosts(store: StateStore) -> list[HostView]:
    redis, keys = store.redis, store.keys
    samples = {s.host: s for s in await HostStore(redis, keys).hosts()}
    out = []
    for name in sorted(set(samples) | set(await monitored_hosts(redis, keys))):
        try:
            rules = await MonitorStore(redis, keys, host=name).rule_states()
        except InvalidValue:
            rules = {}  # a host name the monitor could not have written: show it bare
        out.append(HostView(name, samples.get(name), rules))
    return out


async def read_slow(store: StateStore, before: Slow) -> Slow:
    """A fresh read; if Redis fails, what was read before with the error beside it."""
    redis, keys = store.redis, store.keys
    try:
        servers = await ServerRegistry(redis, keys).all()
        history = DeployStore(redis, keys)
        deploys: dict[str, list[DeployRecord]] = {
            env: await history.history(env, DEPLOYS_SHOWN) for env in POOLS
        }
        return Slow(
            servers=servers,
            hosts=await hosts(store),
            deploys=deploys,
            previews=before.previews,
            read_at=time.time(),
        )
    except StateError as exc:
        return replace(before, error=str(exc))
