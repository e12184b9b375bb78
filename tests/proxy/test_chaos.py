"""Chaos with load running, each bounded in time: a backend killed, Redis
stopped, the state changed 100 times, the proxy stopped. The proxy and the
backends are separate processes; the load counts every failure."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bench.services import Service, Supervisor, start_backend
from state import KeySpace, StateStore, connect
from tests.support.load import Load
from tests.support.proxy import ProxyProcess
from tests.support.redis_server import RedisServer
from tests.support.wait import async_wait_until

CHAOS_ENV = {"PROXY_HEARTBEAT_INTERVAL_S": "0.2", "PROXY_RESYNC_INTERVAL_S": "0.2"}


@pytest.fixture
def processes() -> Iterator[Supervisor]:
    with tempfile.TemporaryDirectory(prefix="sy-chaos-") as workdir:
        sup = Supervisor(Path(workdir))
        yield sup
        sup.stop_all()


def backend(sup: Supervisor, name: str) -> Service:
    return start_backend(sup, name, f"hello from {name}".encode(), sys.executable)


@pytest.fixture
async def redis_store(own_redis: RedisServer) -> AsyncIterator[StateStore]:
    client = connect(own_redis.url)
    yield StateStore(client, KeySpace(), actor="chaos")
    await client.aclose()


async def test_killing_a_production_backend_fails_no_get(
    processes: Supervisor, store: StateStore, proxy_process: Callable[..., ProxyProcess]
) -> None:
    one, two, canary = backend(processes, "p1"), backend(processes, "p2"), backend(processes, "s1")
    for pool, svc in (("production", one), ("production", two), ("staging", canary)):
        await store.add_backend(pool, svc.url)  # type: ignore[arg-type]
    proxy = await asyncio.to_thread(proxy_process, env=CHAOS_ENV)
    load = Load(proxy.port, concurrency=8)
    load.start()
    await load.until(2000)
    os.kill(one.child.pid, signal.SIGKILL)
    await load.until(3000)
    result = await load.stop()
    assert result.failures == [], result.summary()
    assert "backend ejected" in proxy.output()


async def test_stopping_redis_fails_no_request(
    processes: Supervisor,
    own_redis: RedisServer,
    redis_store: StateStore,
    proxy_process: Callable[..., ProxyProcess],
) -> None:
    store = redis_store
    await store.add_backend("production", backend(processes, "p1").url)
    await store.add_backend("staging", backend(processes, "s1").url)
    proxy = ProxyProcess(own_redis.url, env=CHAOS_ENV)
    await asyncio.to_thread(proxy.start)
    try:
        load = Load(proxy.port, concurrency=8)
        load.start()
        await load.until(1000)
        own_redis.stop()
        await async_wait_until(
            lambda: "Redis unreachable, serving the last snapshot" in proxy.output(),
            10,
            "the proxy to notice",
        )
        await load.until(3000)  # all of it while Redis is away and the proxy knows it
        own_redis.start()
        await load.until(1000)
        await store.set_weight(0)  # a change after the outage reaches the proxy
        await async_wait_until(lambda: "routing state changed version=3" in proxy.output(), 10, "resync")
        result = await load.stop()
        assert result.failures == [], result.summary()
    finally:
        await asyncio.to_thread(proxy.cleanup)


async def test_a_hundred_state_changes_fail_no_request(
    processes: Supervisor, store: StateStore, proxy_process: Callable[..., ProxyProcess]
) -> None:
    await store.add_backend("production", backend(processes, "p1").url)
    await store.add_backend("staging", backend(processes, "s1").url)
    proxy = await asyncio.to_thread(proxy_process, env=CHAOS_ENV)
    load = Load(proxy.port, concurrency=8)
    load.start()
    await load.until(500)
    for i in range(100):
        match i % 4:
            case 0:
                await store.set_weight((i * 7) % 101)
            case 1:
                await store.set_flag("disableSET", i % 8 == 1)
            case 2:
                await store.set_alert("chaos")
            case _:
                await store.clear_alert()
        await load.until(20)  # traffic between every change
    result = await load.stop()
    assert result.failures == [], result.summary()
    snapshot = await store.read_snapshot()
    assert snapshot.version >= 100


class SlowBackend:
    """Answers /slow after a release, so requests can be held in flight."""

    def __init__(self) -> None:
        self.arrived = 0
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/{tail:.*}", self.fast)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self.runner, sock).start()

    async def slow(self, request: web.Request) -> web.Response:
        self.arrived += 1
        await self.release.wait()
        return web.Response(text="finished")

    async def fast(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")


async def test_sigterm_loses_no_request_in_flight(
    store: StateStore, proxy_process: Callable[..., ProxyProcess]
) -> None:
    slow = SlowBackend()
    await slow.start()
    try:
        await store.add_backend("production", slow.url)
        proxy = await asyncio.to_thread(proxy_process, env={**CHAOS_ENV, "PROXY_SHUTDOWN_TIMEOUT_S": "20"})
        load = Load(proxy.port, concurrency=4)
        load.start()
        await load.until(200)

        async def slow_request() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(-1), 30)  # to the close after draining
            writer.close()
            return answer

        held = [asyncio.create_task(slow_request()) for _ in range(20)]
        await async_wait_until(lambda: slow.arrived == 20, 10, "20 requests in flight")
        proxy.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        await async_wait_until(
            lambda: "stopping: finishing in-flight requests" in proxy.output(), 10, "drain"
        )
        slow.release.set()
        answers = await asyncio.gather(*held)
        result = await load.stop()
        exit_status = await asyncio.to_thread(proxy.proc.wait, 30)  # type: ignore[union-attr]
    finally:
        if slow.runner is not None:
            await slow.runner.cleanup()
    assert all(a.startswith(b"HTTP/1.1 200 ") and a.endswith(b"finished") for a in answers), answers[:2]
    assert exit_status == 0
    # Once the proxy stopped listening, new connections are refused: those never
    # reached it. Nothing it had read went unanswered.
    assert all("ConnectionRefusedError" in f or "Connect call failed" in f for f in result.failures), (
        result.summary()
    )
