"""The dashboard on an in-process proxy: the page and its headers, the event stream
(state on change, slow reads, nothing a reader may not see), the counts of every proxy
from Redis, cross-site writes refused, and a stop that does not wait on open streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.app import ProxyApp
from proxy.dashboard.routes import FEED
from proxy.versionstats import read_window
from state import ServerRecord, ServerRegistry, StateStore, VersionStatsStore
from tests.support.backends import Backend
from tests.support.dashboard import EventStream
from tests.support.proxy import proxy_config
from tests.support.redis_server import RedisServer
from tests.support.wait import eventually

Routed = tuple[ProxyApp, dict[str, Backend], StateStore]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        yield s


def base(proxy: ProxyApp) -> str:
    return f"http://127.0.0.1:{proxy.admin_port}"


async def test_the_page_and_its_files_carry_a_strict_policy(
    proxy: ProxyApp, session: aiohttp.ClientSession
) -> None:
    for path, kind in (
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ):
        async with session.get(base(proxy) + path) as r:
            assert r.status == 200 and r.content_type == kind
            assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Referrer-Policy"] == "no-referrer"
    async with session.get(base(proxy) + "/dashboard/secrets.txt") as r:
        assert r.status == 404 and (await r.json())["error"] == "not_found"


async def test_the_stream_pushes_a_change_at_once_and_the_slow_reads_beside_it(
    routed: Routed, session: aiohttp.ClientSession
) -> None:
    proxy, backends, store = routed
    async with session.get(base(proxy) + "/dashboard/events") as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        stream = EventStream(r)
        event, hello = await stream.next()
        assert event == "hello" and "history" in hello
        assert hello["pools"]["staging"][0]["url"] == backends["staging"].url  # type: ignore[index]
        await store.set_weight(64)
        await stream.until(lambda s: s["weight"] == 64)
        now = time.time()
        record = ServerRecord(
            "app-9", "staging", "local", "active", now, now, "test", url=backends["staging"].url
        )
        await ServerRegistry(store.redis, store.keys).put(record)
        state = await stream.until(lambda s: bool(s["servers"]), timeout_s=15)
        assert state["pools"]["staging"][0]["server"] == "app-9"  # type: ignore[index]


async def test_a_write_from_another_site_is_refused_and_changes_nothing(
    routed: Routed, session: aiohttp.ClientSession
) -> None:
    proxy, _, store = routed
    url = base(proxy) + "/weight"
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        async with session.put(url, json={"weight": 99}, headers=headers) as r:
            assert r.status == 403 and (await r.json())["error"] == "cross_site"
    assert (await store.read_snapshot()).weight != 99
    # Loopback without a token may write (the admin API's rule), from its own origin too.
    async with session.put(url, json={"weight": 99}, headers={"Origin": base(proxy)}) as r:
        assert r.status == 200
    assert (await store.read_snapshot()).weight == 99


async def test_stopping_the_proxy_ends_open_streams(routed: Routed, session: aiohttp.ClientSession) -> None:
    proxy, _, _ = routed
    async with session.get(base(proxy) + "/dashboard/events") as r:
        stream = EventStream(r)
        await stream.next()
        # aiohttp would wait 60 s for a handler still running: the feed ends the streams.
        async with asyncio.timeout(10):
            await proxy.stop()
        with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
            while True:
                await stream.next(timeout_s=5)


async def test_pages_share_the_feeds_reads_of_redis(routed: Routed, session: aiohttp.ClientSession) -> None:
    """Six pages opening at once cost one slow read, not six: the deploy history's
    XREVRANGE (two per read, one per environment) counts them; and one read of the
    counts' hour (an HGETALL a bucket), then one short read a second."""
    proxy, _, store = routed
    assert proxy.admin_runner is not None
    feed = proxy.admin_runner.app[FEED]
    await store.redis.config_resetstat()
    started = time.monotonic()
    responses = [await session.get(base(proxy) + "/dashboard/events") for _ in range(6)]
    try:
        streams = [EventStream(r) for r in responses]
        for stream in streams:
            for _ in range(3):
                await stream.next()
        elapsed = time.monotonic() - started
        stats = await store.redis.info("commandstats")
        reads = int(stats.get("cmdstat_xrevrange", {}).get("calls", 0)) / 2
        assert 1 <= reads <= 2 + elapsed / 5.0, (reads, elapsed)
        assert 1 <= feed.counts.reads <= 1 + elapsed / feed.tick_s, (feed.counts.reads, elapsed)
        hour_buckets = 3600 // feed.hour.bucket_s + 1
        # Six pages reading the hour each would be six times this.
        assert int(stats.get("cmdstat_hgetall", {}).get("calls", 0)) < 2 * hour_buckets, stats
    finally:
        for r in responses:
            r.release()


async def test_the_counts_cover_every_proxy_and_outlive_a_restart(
    routed: Routed, session: aiohttp.ClientSession, redis_url: str
) -> None:
    """Requests through one proxy show on another that served none of them and has just
    started (as after a restart): the charts and rates are the buckets in Redis."""
    proxy, _, store = routed
    for _ in range(20):
        async with session.get(f"http://127.0.0.1:{proxy.port}/") as r:
            assert r.status == 200
    stats = VersionStatsStore(store.redis, store.keys)

    async def all_counted() -> bool:
        now = time.time()
        window = await read_window(stats, now - 120, now + 1)
        return window.production.requests + window.staging.requests == 20

    await eventually(all_counted, 10, "the first proxy's 20 requests in Redis")
    fresh = ProxyApp(proxy_config(redis_url))
    await fresh.start()
    try:
        async with session.get(base(fresh) + "/dashboard/events") as r:
            stream = EventStream(r)
            _, hello = await stream.next()
            assert hello["history"] == {"production": [], "staging": []}  # nothing read yet
            state = await stream.until(lambda s: _charted(s) == 20)
        versions = state["versions"]
        assert isinstance(versions, list)
        assert sum(v["rps"] for v in versions) > 0 and fresh.ctx.stats.requests == {}
    finally:
        await fresh.stop()


def _charted(state: dict[str, object]) -> int:
    tail = state["tail"]
    assert isinstance(tail, dict)
    return sum(p["n"] for points in tail.values() for p in points)


async def test_with_redis_away_the_page_stays_live_and_says_the_counts_are_not_read(
    own_redis: RedisServer, session: aiohttp.ClientSession
) -> None:
    proxy = ProxyApp(proxy_config(own_redis.url))
    await proxy.start()
    try:
        async with session.get(base(proxy) + "/dashboard/events") as r:
            stream = EventStream(r)
            await stream.next()
            await stream.until(lambda s: s["counts_error"] is None)
            own_redis.stop()
            state = await stream.until(lambda s: s["counts_error"] is not None, timeout_s=15)
            assert state["counts_error"] == "the counts could not be read from Redis: see the proxy's log"
            await stream.next()  # still a state a second: the page stays live
            await asyncio.to_thread(own_redis.start)
            await stream.until(lambda s: s["counts_error"] is None, timeout_s=15)
    finally:
        await proxy.stop()
