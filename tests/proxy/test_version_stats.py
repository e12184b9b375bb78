"""Per-version stats end to end: real proxies (processes, and one in-process app), real
backends, a real redis-server; `proxy stats` and GET /stats/versions read them back."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from proxy.app import ProxyApp
from proxy.versionstats import VersionWindows, read_window
from state import KeySpace, StateStore, VersionStatsStore, connect
from tests.support.backends import Backend
from tests.support.load import Load
from tests.support.ports import free_port
from tests.support.proxy import ProxyProcess, proxy_config, run_cli
from tests.support.rawhttp import RawBackend, ok
from tests.support.redis_server import RedisServer
from tests.support.wait import eventually

Z_999 = 3.29  # two-sided 99.9%: a correct split fails this check once in a thousand runs


@pytest.fixture
async def stats(redis_url: str) -> AsyncIterator[VersionStatsStore]:
    client = connect(redis_url)
    yield VersionStatsStore(client, KeySpace())
    await client.aclose()


async def window(stats: VersionStatsStore) -> VersionWindows:
    now = time.time()
    return await read_window(stats, now - 120, now + 1)


async def counted(stats: VersionStatsStore) -> int:
    got = await window(stats)
    return got.production.requests + got.staging.requests


async def bounded_load(port: int, n: int) -> None:
    load = Load(port, concurrency=4, max_requests=n)
    load.start()
    await load.until(n, timeout_s=60)
    result = await load.stop()
    assert result.ok == n, result.summary()


async def test_two_proxies_add_up_and_the_share_matches_the_weight(
    store: StateStore,
    stats: VersionStatsStore,
    backends: dict[str, Backend],
    proxy_process: Callable[..., ProxyProcess],
) -> None:
    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    await store.set_weight(30)
    first, second = proxy_process(), proxy_process()

    await asyncio.gather(bounded_load(first.port, 1000), bounded_load(second.port, 1000))

    await eventually(lambda: _at_least(stats, 2000), 10, "all 2,000 requests counted", interval_s=0.1)
    got = await window(stats)
    # Exactly what reached each backend: counted once, by the proxy that routed it.
    assert got.production.requests == backends["production"].hits
    assert got.staging.requests == backends["staging"].hits
    assert got.production.responses[1] + got.staging.responses[1] == 2000
    assert got.production.latency.count + got.staging.latency.count == 2000
    share, n = got.staging.requests / 2000, 2000
    # No drift (flagger #1532): 30% lies within the share's 99.9% interval, about +-3.4 points.
    assert abs(share - 0.30) <= Z_999 * math.sqrt(0.3 * 0.7 / n), share


async def _at_least(stats: VersionStatsStore, n: int) -> bool:
    total = await counted(stats)
    assert total <= n, f"{total} requests counted of {n} sent: some were counted twice"
    return total == n


async def test_a_redis_outage_loses_no_count_and_counts_none_twice(
    own_redis: RedisServer, backends: dict[str, Backend]
) -> None:
    client = connect(own_redis.url)
    store, stats = StateStore(client, actor="test"), VersionStatsStore(client)
    proxy = ProxyProcess(own_redis.url)
    try:
        await store.add_backend("production", backends["production"].url)
        proxy.start()
        await bounded_load(proxy.port, 200)
        await eventually(lambda: _at_least(stats, 200), 10, "200 counted", interval_s=0.1)

        own_redis.stop()
        await bounded_load(proxy.port, 300)  # routed from the proxy's snapshot meanwhile
        own_redis.start()

        # The pending batch is added whole, once: the total jumps from 200 to 500, never past it.
        await eventually(lambda: _at_least(stats, 500), 20, "the outage's 300 counted", interval_s=0.1)
        await bounded_load(proxy.port, 10)
        await eventually(lambda: _at_least(stats, 510), 10, "10 more counted", interval_s=0.1)
        assert backends["production"].hits == 510
    finally:
        proxy.cleanup()
        await client.aclose()


@pytest.fixture
async def raw() -> AsyncIterator[RawBackend]:
    backend = RawBackend()
    release = asyncio.Event()

    async def fail(request: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
        return True

    async def reset(request: bytes, w: asyncio.StreamWriter) -> bool:
        return False  # closed before any byte of a response

    async def hang(request: bytes, w: asyncio.StreamWriter) -> bool:
        await release.wait()
        return False

    backend.routes = {b"/ok": ok, b"/fail": fail, b"/reset": reset, b"/hang": hang}
    await backend.start()
    yield backend
    release.set()
    await backend.stop()


async def test_upstream_errors_and_5xx_are_classified(
    redis_url: str, store: StateStore, stats: VersionStatsStore, raw: RawBackend, backends: dict[str, Backend]
) -> None:
    app = ProxyApp(proxy_config(redis_url, read_timeout_s=0.5, outlier_consecutive_failures=1000))
    await app.start()
    try:
        await store.add_backend("production", backends["production"].url)
        await store.add_backend("staging", raw.url)
        await store.set_weight(100)
        await eventually(lambda: app.snapshots.snapshot.weight == 100, 5, "the weight")
        base = f"http://127.0.0.1:{app.port}"
        async with aiohttp.ClientSession() as s:
            for path, n in (("/ok", 4), ("/fail", 3), ("/reset", 2), ("/hang", 1)):
                for _ in range(n):
                    async with s.get(base + path) as r:
                        await r.read()
            dead = f"http://127.0.0.1:{free_port()}"
            await store.add_backend("staging", dead)
            await store.remove_backend("staging", raw.url)
            await eventually(lambda: app.snapshots.snapshot.staging == (dead,), 5, "the dead backend")
            async with s.get(base + "/ok") as r:
                assert r.status == 502

        await eventually(
            lambda: _staging_requests(stats, 11), 10, "11 staging requests counted", interval_s=0.1
        )
        got = (await window(stats)).staging
        assert got.responses == (0, 4, 0, 0, 3)  # a 500 is an answer, not an upstream error
        assert got.upstream_errors == (1, 2, 1)  # connect, reset, timeout
        assert got.errors == 7 and got.latency.count == 7
        assert (await window(stats)).production.requests == 0
    finally:
        await app.stop()


async def _staging_requests(stats: VersionStatsStore, n: int) -> bool:
    got = await window(stats)
    return got.staging.requests == n and sum(got.staging.responses) + sum(got.staging.upstream_errors) == n


async def test_no_counts_with_version_stats_off(
    redis_url: str, store: StateStore, stats: VersionStatsStore, backends: dict[str, Backend]
) -> None:
    app = ProxyApp(proxy_config(redis_url, version_stats=False))
    await app.start()
    try:
        await store.add_backend("production", backends["production"].url)
        await eventually(lambda: bool(app.snapshots.snapshot.production), 5, "the pool")
        await bounded_load(app.port, 20)
        assert app.ctx.version_counters == {}
        assert app.ctx.stats.by_version() == {"production": 20}
    finally:
        await app.stop()
    assert await counted(stats) == 0


async def test_proxy_stats_prints_and_its_json_is_the_admin_apis(
    redis_url: str, store: StateStore, stats: VersionStatsStore, backends: dict[str, Backend]
) -> None:
    app = ProxyApp(proxy_config(redis_url))
    await app.start()
    try:
        await store.add_backend("production", backends["production"].url)
        await store.add_backend("staging", backends["staging"].url)
        await store.set_weight(50)
        await eventually(lambda: app.snapshots.snapshot.weight == 50, 5, "the weight")
        await bounded_load(app.port, 100)
        await eventually(lambda: _at_least(stats, 100), 10, "100 counted", interval_s=0.1)

        text = await asyncio.to_thread(run_cli, "stats", "--window", "5m", env={"REDIS_URL": redis_url})
        assert text.returncode == 0, text.stderr
        assert "production" in text.stdout and "p50/p95/p99 ms" in text.stdout
        assert "weight 50% to staging" in text.stdout
        as_json = await asyncio.to_thread(run_cli, "stats", "--json", env={"REDIS_URL": redis_url})
        body = json.loads(as_json.stdout)
        versions = body["versions"]
        assert versions["production"]["requests"] + versions["staging"]["requests"] == 100
        assert versions["staging"]["share"]["expected"] == 0.5
        assert versions["production"]["release"] == "unknown"
        assert body["window"]["requested_s"] == 300
        assert versions["staging"]["latency_s"]["samples"] == versions["staging"]["requests"]

        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{app.admin_port}/stats/versions?window=300") as r,
        ):
            assert r.status == 200
            admin = await r.json()
        # Nothing was served in between: the same counts (the rate moves on with the clock).
        assert _without_rate(admin["versions"]) == _without_rate(versions)
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{app.admin_port}/metrics") as r:
            metrics = await r.text()
        assert 'switchyard_version_release{release="unknown",version="staging"} 1.0' in metrics
        assert 'switchyard_requests_total{status_class="2xx",version="staging"}' in metrics
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{app.admin_port}/stats/versions?window=forever") as r,
        ):
            assert r.status == 400
            assert (await r.json())["error"] == "bad_request"
    finally:
        await app.stop()


def _without_rate(versions: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    return {name: {k: v for k, v in version.items() if k != "rps"} for name, version in versions.items()}


@pytest.mark.parametrize("window_arg", ["5x", "0", "-5m", "2d"])
def test_a_bad_window_is_one_line_and_exit_2(redis_url: str, window_arg: str) -> None:
    result = run_cli("stats", f"--window={window_arg}", env={"REDIS_URL": redis_url})
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: window")
