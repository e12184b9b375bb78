"""Canary routing through a running proxy: split, stickiness, kill switch, flags."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import aiohttp
import pytest

from proxy.app import ProxyApp
from state import StateStore
from tests.support import ROOT
from tests.support.backends import Backend
from tests.support.wait import async_wait_until, eventually

Routed = tuple[ProxyApp, dict[str, Backend], StateStore]


async def _versions(port: int, n: int, *, concurrency: int = 32, path: str = "/") -> Counter[str]:
    """Send n cookie-less requests; count which version answered."""
    seen: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as s:
        left = iter(range(n))

        async def worker() -> None:
            for _ in left:
                async with s.get(f"http://127.0.0.1:{port}{path}") as r:
                    assert r.status == 200, await r.text()
                    seen[r.headers["X-Backend"]] += 1
                    await r.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


async def test_cookieless_traffic_splits_70_30(routed: Routed) -> None:
    proxy, _, _ = routed
    seen = await _versions(proxy.port, 10_000)
    share = seen["staging"] / 10_000
    # 10,000 requests, tolerance +/-2 points.
    assert 0.28 <= share <= 0.32, seen
    assert proxy.ctx.stats.by_version() == {"production": seen["production"], "staging": seen["staging"]}


@pytest.mark.parametrize(("weight", "only"), [(0, "production"), (100, "staging")])
async def test_weight_0_and_100_are_exact(routed: Routed, weight: int, only: str) -> None:
    proxy, _, store = routed
    await store.set_weight(weight)
    await async_wait_until(lambda: proxy.snapshots.snapshot.weight == weight, 5, "weight to arrive")
    assert set(await _versions(proxy.port, 500)) == {only}


async def test_sticky_clients_never_flip(routed: Routed) -> None:
    proxy, _, _ = routed
    flips = 0
    versions_seen: Counter[str] = Counter()
    async with aiohttp.ClientSession() as probe, probe.get(f"http://127.0.0.1:{proxy.port}/") as r:
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("sy_bucket=") and "Path=/" in cookie

    async def client() -> None:
        nonlocal flips
        # its own jar; unsafe=True because aiohttp refuses cookies from IP hosts by default
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            versions = set()
            for _ in range(8):
                async with s.get(f"http://127.0.0.1:{proxy.port}/") as r:
                    versions.add(r.headers["X-Backend"])
                    await r.read()
            flips += len(versions) > 1
            versions_seen.update(versions)

    await asyncio.gather(*(client() for _ in range(200)))
    assert flips == 0
    assert set(versions_seen) == {"production", "staging"}  # 200 clients: both versions appear


async def test_raising_the_weight_keeps_staging_users_on_staging(routed: Routed) -> None:
    proxy, _, store = routed
    url = f"http://127.0.0.1:{proxy.port}/"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        for bucket in (0, 29, 30, 64, 99):
            async with s.get(url, headers={"Cookie": f"sy_bucket={bucket}"}) as r:
                assert r.headers["X-Backend"] == ("staging" if bucket < 30 else "production")
                assert "Set-Cookie" not in r.headers
        await store.set_weight(65)
        await async_wait_until(lambda: proxy.snapshots.snapshot.weight == 65, 5, "weight 65")
        for bucket in (0, 29, 30, 64, 65, 99):
            async with s.get(url, headers={"Cookie": f"sy_bucket={bucket}"}) as r:
                assert r.headers["X-Backend"] == ("staging" if bucket < 65 else "production")


async def test_tester_override_header_and_cookie(routed: Routed) -> None:
    proxy, _, _ = routed
    url = f"http://127.0.0.1:{proxy.port}/"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        for _ in range(20):
            async with s.get(url, headers={"X-Canary": "always", "Cookie": "sy_bucket=99"}) as r:
                assert r.headers["X-Backend"] == "staging"
            async with s.get(url, headers={"Cookie": "canary=never; sy_bucket=0"}) as r:
                assert r.headers["X-Backend"] == "production"


async def test_kill_switch_reaches_the_proxy_within_100ms(routed: Routed) -> None:
    proxy, backends, store = routed
    await store.set_weight(100)
    await async_wait_until(lambda: proxy.snapshots.snapshot.weight == 100, 5, "weight 100")
    written = time.monotonic()
    await store.set_alert("test")
    await async_wait_until(lambda: proxy.snapshots.snapshot.alert is not None, 5, "alert")
    took = time.monotonic() - written  # the write itself included
    assert took < 0.1, f"alert took {took * 1000:.1f} ms"
    before = backends["staging"].hits
    assert set(await _versions(proxy.port, 300)) == {"production"}
    assert backends["staging"].hits == before
    await store.clear_alert()
    await async_wait_until(lambda: proxy.snapshots.snapshot.alert is None, 5, "alert cleared")
    assert set(await _versions(proxy.port, 50)) == {"staging"}


async def test_cli_alert_write_stops_staging_on_a_running_proxy(routed: Routed, redis_url: str) -> None:
    proxy, _, store = routed
    await store.set_weight(100)
    await async_wait_until(lambda: proxy.snapshots.snapshot.weight == 100, 5, "weight 100")
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "alert",
        "set",
        "--reason",
        "cli test",
        "--redis-url",
        redis_url,
        cwd=ROOT,
    )
    assert await cli.wait() == 0
    exited = time.monotonic()
    await async_wait_until(lambda: proxy.snapshots.snapshot.alert is not None, 5, "the CLI's alert")
    assert time.monotonic() - exited < 0.1
    assert proxy.snapshots.snapshot.alert is not None
    assert proxy.snapshots.snapshot.alert.reason == "cli test"
    assert set(await _versions(proxy.port, 100)) == {"production"}


async def test_disable_urls_toggle_the_set_feature(routed: Routed) -> None:
    proxy, backends, store = routed
    base = f"http://127.0.0.1:{proxy.port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/disable/1") as r:
            assert r.status == 200
            assert await r.json() == {"flag": "disableSET", "on": True, "changed": True}
        assert (await store.read_snapshot()).flags == {"disableSET": True}
        await async_wait_until(lambda: proxy.snapshots.snapshot.flags.get("disableSET", False), 5, "flag on")
        hits = backends["production"].hits + backends["staging"].hits
        for path in ("/set", "/set?key=a&value=1", "/set/x", "/SET", "/%73et"):
            async with s.get(base + path) as r:
                assert r.status == 403, path
                assert r.content_type == "application/json"
                body = await r.json()
                assert body["flag"] == "disableSET" and body["error"] == "feature_disabled"
        assert backends["production"].hits + backends["staging"].hits == hits  # none reached a backend
        async with s.get(f"{base}/get?key=a") as r:
            assert r.status == 200
            seen = dict((await r.json())["headers"])
            assert seen["X-Feature-Flags"] == "disableSET"
        async with s.get(f"{base}/disable/0") as r:
            assert (await r.json())["on"] is False
        await async_wait_until(lambda: not proxy.snapshots.snapshot.flags["disableSET"], 5, "flag off")
        async with s.get(f"{base}/set?key=a&value=1") as r:
            assert r.status == 200
            assert "X-Feature-Flags" not in dict((await r.json())["headers"])
        async with s.get(f"{base}/disable/2") as r:
            assert r.status == 404
            assert "disable/1" in (await r.json())["message"]


async def test_client_cannot_spoof_feature_flags(routed: Routed) -> None:
    proxy, _, _ = routed
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{proxy.port}/", headers={"X-Feature-Flags": "admin"}) as r,
    ):
        assert "X-Feature-Flags" not in dict((await r.json())["headers"])


async def test_no_backends_is_a_clear_503(proxy: ProxyApp) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{proxy.port}/") as r:
        assert r.status == 503
        body = await r.json()
        assert body["error"] == "no_backend" and "pool add" in body["message"]


async def test_serve_as_a_subprocess(redis_url: str, store: StateStore, backends: dict[str, Backend]) -> None:
    from tests.support.ports import free_port  # noqa: PLC0415

    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    port, admin = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        "--redis-url",
        redis_url,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as s:

            async def health() -> bool:
                try:
                    async with s.get(f"http://127.0.0.1:{admin}/health") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            def alive() -> None:
                assert proc.returncode is None, "proxy exited"

            await eventually(health, 15, "the proxy to become healthy", interval_s=0.02, alive=alive)
            seen = await _versions(port, 400)
            assert set(seen) == {"production", "staging"}
            await store.set_alert("subprocess test")

            async def alerted() -> bool:
                async with s.get(f"http://127.0.0.1:{admin}/status") as r:
                    return (await r.json())["proxy"]["snapshot"]["alert"] is not None

            await eventually(alerted, 5, "the alert to reach the subprocess proxy", interval_s=0)
            assert set(await _versions(port, 200)) == {"production"}
            status = json.loads(await (await s.get(f"http://127.0.0.1:{admin}/status")).read())
            assert status["instances"] and status["instances"][0]["listen"] == f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
