"""The dashboard on an in-process proxy: the page and its headers, the event stream
(state on change, slow reads, nothing a reader may not see), cross-site writes refused,
and a stop that does not wait on open streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.app import ProxyApp
from state import ServerRecord, ServerRegistry, StateStore
from tests.support.backends import Backend
from tests.support.dashboard import EventStream

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
    XREVRANGE (two per read, one per environment) counts them."""
    proxy, _, store = routed
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
    finally:
        for r in responses:
            r.release()
