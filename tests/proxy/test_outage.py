"""Redis dies under a running proxy: it keeps routing from its snapshot."""

from __future__ import annotations

import aiohttp

from proxy.app import ProxyApp
from state import KeySpace, StateStore, connect
from tests.support.backends import Backend
from tests.support.proxy import proxy_config
from tests.support.redis_server import RedisServer
from tests.support.wait import async_wait_until


async def test_proxy_serves_through_a_redis_outage_and_resyncs(
    own_redis: RedisServer, backends: dict[str, Backend]
) -> None:
    client = connect(own_redis.url)
    store = StateStore(client, KeySpace(), actor="test")
    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    app = ProxyApp(proxy_config(own_redis.url, resync_interval_s=0.2))
    await app.start()
    base = f"http://127.0.0.1:{app.port}"
    admin = f"http://127.0.0.1:{app.admin_port}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
            assert app.snapshots.snapshot.staging and not app.snapshots.stale

            own_redis.stop()
            await async_wait_until(lambda: app.snapshots.stale, 10, "the proxy to notice Redis is gone")
            seen = set()
            for _ in range(300):
                async with s.get(base + "/") as r:
                    assert r.status == 200
                    seen.add(r.headers["X-Backend"])
            assert seen == {"production", "staging"}  # still the canary split, from the snapshot
            async with s.get(admin + "/metrics") as r:
                text = await r.text()
            assert "switchyard_state_stale 1.0" in text
            async with s.get(admin + "/status") as r:
                body = await r.json()
            assert body["proxy"]["state_stale"] is True and body["redis"] is None
            assert "Redis" in body["redis_error"]
            async with s.get(base + "/disable/1") as r:
                assert r.status == 503  # a write cannot happen now, and says so
                assert (await r.json())["error"] == "state_unavailable"

            own_redis.start()
            await async_wait_until(lambda: not app.snapshots.stale, 15, "the proxy to resync")
            await store.set_alert("after the outage")
            await async_wait_until(
                lambda: app.snapshots.snapshot.alert is not None, 5, "a change after the outage"
            )
            for _ in range(50):
                async with s.get(base + "/") as r:
                    assert r.headers["X-Backend"] == "production"
    finally:
        await app.stop()
        await client.aclose()
