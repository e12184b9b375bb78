"""Retries on another backend, the retry budget, outlier ejection and active
health checks, against real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from proxy.app import ProxyApp
from state import StateStore
from tests.support.backends import Backend
from tests.support.ports import free_port
from tests.support.proxy import proxy_config
from tests.support.rawhttp import read_response
from tests.support.wait import async_wait_until

Start = Callable[..., Awaitable[ProxyApp]]


@pytest.fixture
async def start_proxy(redis_url: str) -> AsyncIterator[Start]:
    apps: list[ProxyApp] = []

    async def start(**overrides: object) -> ProxyApp:
        app = ProxyApp(proxy_config(redis_url, **overrides))
        await app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        await app.stop()


@pytest.fixture
async def live() -> AsyncIterator[Backend]:
    backend = Backend("live")
    await backend.start()
    yield backend
    await backend.stop()


class RawServers:
    """Hand-written backends; every connection they accept is closed at the end."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.writers: set[asyncio.StreamWriter] = set()

    async def serve(
        self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> str:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.add(writer)
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
                self.writers.discard(writer)

        server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
        self.servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
        for writer in list(self.writers):
            writer.transport.abort()
        await async_wait_until(lambda: not self.writers, 5, "raw backend connections to end")


RAW = RawServers()


async def serve_raw(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> str:
    return await RAW.serve(handler)


@pytest.fixture(autouse=True)
async def _close_raw_servers() -> AsyncIterator[None]:
    yield
    await RAW.close()
    RAW.servers.clear()


async def resetter(seen: list[bytes]) -> str:
    """Accepts, reads the request, and closes without a byte of response."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.transport.abort()

    return await serve_raw(handle)


def refused() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


async def pool(store: StateStore, app: ProxyApp, name: str, *urls: str) -> None:
    for url in urls:
        await store.add_backend(name, url)  # type: ignore[arg-type]
    await async_wait_until(lambda: len(app.snapshots.snapshot.pool(name)) == len(urls), 5, "the pool")  # type: ignore[arg-type]


async def fire(
    port: int, n: int, method: str = "GET", **kw: object
) -> tuple[Counter[int], list[dict[str, object]]]:
    statuses: Counter[int] = Counter()
    bodies: list[dict[str, object]] = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            async with s.request(method, f"http://127.0.0.1:{port}/x", **kw) as r:  # type: ignore[arg-type]
                statuses[r.status] += 1
                if r.content_type == "application/json":
                    bodies.append(await r.json())
    return statuses, bodies


async def warm_budget(port: int, n: int = 50) -> None:
    """Requests fill the retry budget (a fresh proxy has none)."""
    statuses, _ = await fire(port, n)
    assert statuses == Counter({200: n})


async def test_a_refused_backend_costs_no_failed_get(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    app = await start_proxy()
    await pool(store, app, "production", live.url)
    await warm_budget(app.port)
    dead = refused()
    await pool(store, app, "production", live.url, dead)
    statuses, _ = await fire(app.port, 200)
    assert statuses == Counter({200: 200})
    assert app.ctx.retry_budget.retries >= 1
    assert dead in app.ctx.outliers.ejected  # after 5 failures in a row it is left out
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{app.admin_port}/metrics") as r:
            metrics = await r.text()
        async with s.get(f"http://127.0.0.1:{app.admin_port}/status") as r:
            status = (await r.json())["proxy"]
    assert f'switchyard_backend_ejected{{backend="{dead}"}} 1.0' in metrics
    assert f"switchyard_retries_total {float(app.ctx.retry_budget.retries)}" in metrics
    assert "switchyard_ejections_total 1.0" in metrics
    assert list(status["ejected"]) == [dead] and 0 < status["ejected"][dead] <= 10
    assert status["retries"] == app.ctx.retry_budget.retries


async def beside_a_resetter(
    start_proxy: Start, store: StateStore, live: Backend, *, warm: int
) -> tuple[ProxyApp, list[bytes]]:
    """A proxy whose production pool is `live` and a backend that resets every request,
    kept in rotation, with the retry budget filled by `warm` requests first (it holds
    at most 20 retries); returns the requests the resetter saw."""
    app = await start_proxy(outlier_consecutive_failures=1000)
    await pool(store, app, "production", live.url)
    await warm_budget(app.port, warm)
    seen: list[bytes] = []
    await pool(store, app, "production", live.url, await resetter(seen))
    return app, seen


async def test_a_reset_before_the_response_is_retried_for_get(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    app, seen = await beside_a_resetter(start_proxy, store, live, warm=100)
    statuses, _ = await fire(app.port, 20)  # about 10 go to the resetter first
    assert statuses == Counter({200: 20})
    assert seen, "some requests must have gone to the resetting backend first"


async def test_post_is_not_retried_unless_it_carries_an_idempotency_key(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    app, seen = await beside_a_resetter(start_proxy, store, live, warm=200)
    statuses, _ = await fire(app.port, 40, "POST", data=b"payload")
    assert statuses[502] >= 1 and statuses[502] == len(seen)  # each reset reached the client
    assert statuses[200] + statuses[502] == 40
    seen.clear()
    statuses, bodies = await fire(app.port, 24, "POST", data=b"payload", headers={"Idempotency-Key": "k1"})
    assert statuses == Counter({200: 24}) and seen
    assert {b["body_len"] for b in bodies} == {7}


async def test_a_retried_put_carries_its_whole_body(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    app, seen = await beside_a_resetter(start_proxy, store, live, warm=200)
    body = bytes(range(256)) * 100  # 25,600 bytes: replayable
    statuses, bodies = await fire(app.port, 24, "PUT", data=body)
    assert statuses == Counter({200: 24}) and seen
    assert {b["body_len"] for b in bodies} == {len(body)}


async def test_no_response_in_time_is_504_and_never_retried(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    seen: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        await reader.read()  # until the proxy gives up and closes

    app = await start_proxy(read_timeout_s=0.3)
    await pool(store, app, "production", await serve_raw(silent))
    await warm_budget_on(app, store, live)
    statuses, bodies = await fire(app.port, 1)
    assert statuses == Counter({504: 1}) and bodies[0]["error"] == "gateway_timeout"
    assert len(seen) == 1  # the backend may still be working on it: one attempt only


async def warm_budget_on(app: ProxyApp, store: StateStore, live: Backend) -> None:
    """Fill the budget through `live` alone, then leave the pool as it was."""
    before = app.snapshots.snapshot.production
    await store.add_backend("production", live.url)
    for url in before:
        await store.remove_backend("production", url)
    await async_wait_until(lambda: app.snapshots.snapshot.production == (live.url,), 5, "live only")
    await warm_budget(app.port)
    for url in before:
        await store.add_backend("production", url)
    await store.remove_backend("production", live.url)
    await async_wait_until(lambda: app.snapshots.snapshot.production == before, 5, "the pool back")


async def test_an_empty_budget_means_no_retries(start_proxy: Start, store: StateStore, live: Backend) -> None:
    app = await start_proxy(retry_budget_ratio=0.0, outlier_consecutive_failures=1000)
    await pool(store, app, "production", live.url, refused())
    statuses, bodies = await fire(app.port, 40)
    assert statuses[502] >= 1 and statuses[200] + statuses[502] == 40
    assert {b["error"] for b in bodies if "error" in b} == {"bad_gateway"}
    assert app.ctx.retry_budget.retries == 0


async def test_5xx_answers_eject_a_backend_but_are_relayed(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops")

    app = await start_proxy(outlier_consecutive_failures=3, outlier_base_ejection_s=60)
    bad = await serve_raw(broken)
    await pool(store, app, "production", live.url, bad)
    statuses, _ = await fire(app.port, 100)
    assert 1 <= statuses[500] <= 3  # relayed as they came, until the third ejected it
    assert bad in app.ctx.outliers.ejected
    assert statuses[200] == 100 - statuses[500]


async def test_never_more_than_half_of_production_is_ejected(start_proxy: Start, store: StateStore) -> None:
    app = await start_proxy(retry_budget_ratio=0.0, outlier_consecutive_failures=2)
    dead = [refused(), refused()]
    await pool(store, app, "production", *dead)
    statuses, _ = await fire(app.port, 30)
    assert statuses == Counter({502: 30})
    assert len(app.ctx.outliers.ejected) == 1  # the other stays: half of two


async def test_an_ejected_staging_pool_sends_everything_to_production(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    app = await start_proxy(outlier_consecutive_failures=2, outlier_base_ejection_s=60)
    await pool(store, app, "production", live.url)
    await warm_budget(app.port)
    dead = refused()
    await pool(store, app, "staging", dead)
    await store.set_weight(100)
    await async_wait_until(lambda: app.snapshots.snapshot.weight == 100, 5, "weight 100")
    statuses, _ = await fire(app.port, 40)
    # Failures on staging are retried on staging only: none left, so the first two fail.
    assert statuses[502] <= 2 and statuses[200] >= 38
    assert dead in app.ctx.outliers.ejected
    assert app.ctx.view().staging == ()
    statuses, _ = await fire(app.port, 50)
    assert statuses == Counter({200: 50})


async def test_an_active_health_check_brings_a_backend_back_early(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    healthy = asyncio.Event()

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if healthy.is_set():
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            else:
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown")

    app = await start_proxy(
        outlier_consecutive_failures=2, outlier_base_ejection_s=300, health_check_interval_s=0.1
    )
    other = await serve_raw(flaky)
    await pool(store, app, "production", live.url, other)
    await fire(app.port, 30)
    assert other in app.ctx.outliers.ejected
    # Still failing its checks: it stays out.
    await async_wait_until(lambda: app.ctx.outliers.ejected.get(other, 0) > 0, 1, "held out")
    healthy.set()
    await async_wait_until(lambda: other not in app.ctx.outliers.ejected, 5, "the health check to pass")
    statuses, _ = await fire(app.port, 40)
    assert statuses == Counter({200: 40})


async def test_a_slow_upload_is_not_the_backends_delay(
    start_proxy: Start, store: StateStore, live: Backend
) -> None:
    # The response timer starts at the end of the request body: 4 uploads taking
    # 4 x 0.2 s each against a 0.3 s read timeout all succeed, and nothing is ejected
    # although a single failure would eject the backend.
    app = await start_proxy(read_timeout_s=0.3, outlier_consecutive_failures=1)
    await pool(store, app, "production", live.url)

    async def upload() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n")
        for byte in b"abcd":
            await asyncio.sleep(0.2)  # the client's pace is what is tested, not a wait for a race
            writer.write(bytes([byte]))
        try:
            return await asyncio.wait_for(read_response(reader), 5)
        finally:
            writer.close()

    answers = await asyncio.gather(*(upload() for _ in range(4)))
    assert [a.split(b" ")[1] for a in answers] == [b"200"] * 4
    assert all(b'"body_len": 4' in a for a in answers)
    assert app.ctx.outliers.ejected == {}
