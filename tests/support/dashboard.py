"""The dashboard's test deployment: a proxy process with an admin token in front of two
real backends, and the state a running system would show."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from state import (
    DeployRecord,
    DeployStore,
    HostSample,
    HostStore,
    MonitorStore,
    ServerRecord,
    ServerRegistry,
    StateStore,
)
from tests.support.backends import Backend
from tests.support.proxy import ProxyProcess

TOKEN = "dash-s3cret"  # noqa: S105  (the test deployment's admin token, not a real secret)
BUCKET_S = 2  # the test deployment's stats_bucket_s


@dataclass
class Dashboard:
    proxy: ProxyProcess
    store: StateStore
    backends: dict[str, Backend]
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.admin_port}/"

    async def served_by(self, path: str = "/") -> str:
        async with self.session.get(f"http://127.0.0.1:{self.proxy.port}{path}") as r:
            await r.read()
            return r.headers.get("X-Backend", f"status {r.status}")


async def show_some_state(store: StateStore, backends: dict[str, Backend]) -> None:
    """A deploy per environment, a managed server, a monitored host with a rule: what a
    running system has, so every section has something to draw."""
    now = time.time()
    deploys = DeployStore(store.redis, store.keys)
    for record in (
        DeployRecord("production", "deploy", "4f2a9c1e7b3d0a11", "succeeded", "git push", now - 7200, 41.5),
        DeployRecord("staging", "deploy", "9be41d07aa52c3f0", "succeeded", "git push", now - 600, 38.2),
    ):
        await deploys.record(record)
    await ServerRegistry(store.redis, store.keys).put(
        ServerRecord(
            id="app-7f3k",
            pool="staging",
            provider="local",
            state="active",
            created_at=now - 900,
            updated_at=now - 850,
            owner="provisioner",
            step="register",
            address="127.0.0.1",
            url=backends["staging"].url,
        )
    )
    await HostStore(store.redis, store.keys).publish(
        HostSample("app-7f3k", "staging", 23.5, 41.0, now), ttl_s=600
    )
    await MonitorStore(store.redis, store.keys, host="app-7f3k").commit(
        {"cpu": {"phase": "ok", "value": 23.5}, "memory": {"phase": "ok", "value": 41.0}}, [], []
    )


class EventStream:
    """A server-sent event stream read line by line, as EventSource would."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout_s: float = 10.0) -> tuple[str, dict[str, object]]:
        event, data = "message", ""
        async with asyncio.timeout(timeout_s):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the event stream ended")
                line = raw.decode().rstrip("\n")
                if not line:
                    if data:
                        return event, json.loads(data)
                    event = "message"
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]

    async def until(
        self, predicate: Callable[[dict[str, object]], bool], timeout_s: float = 10.0
    ) -> dict[str, object]:
        """The first state event that satisfies `predicate`."""
        async with asyncio.timeout(timeout_s):
            while True:
                _, state = await self.next(timeout_s)
                if predicate(state):
                    return state
