"""Redis loses the routing state: proxies route on from their snapshot, the first to
notice writes it back under a new generation, the others adopt it (nothing-lost #11, 3)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.services import Service, Supervisor, start_backend
from proxy.app import ProxyApp
from state import KeySpace, Snapshot, StateStore, connect
from tests.support.backends import Backend
from tests.support.load import Load
from tests.support.proxy import ProxyProcess, proxy_config, run_cli
from tests.support.redis_server import RedisServer
from tests.support.wait import eventually

FAST = {"PROXY_HEARTBEAT_INTERVAL_S": "0.2", "PROXY_RESYNC_INTERVAL_S": "0.2"}


@pytest.fixture
def volatile_redis() -> Iterator[RedisServer]:
    """A private redis-server without persistence: stopped and started, it comes back empty."""
    server = RedisServer(persistent=False)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def vstore(volatile_redis: RedisServer) -> AsyncIterator[StateStore]:
    client = connect(volatile_redis.url)
    yield StateStore(client, KeySpace(), actor="test")
    await client.aclose()


@pytest.fixture
def processes() -> Iterator[Supervisor]:
    with tempfile.TemporaryDirectory(prefix="sy-loss-") as workdir:
        sup = Supervisor(Path(workdir))
        yield sup
        sup.stop_all()


def _content(snap: Snapshot) -> dict[str, object]:
    body = snap.to_json()
    body.pop("version")
    return body


async def _json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as r:
        return await r.text()


async def _populate(store: StateStore, prod: Service, canary: Service) -> Snapshot:
    await store.add_backend("production", prod.url)
    await store.add_backend("staging", canary.url)
    await store.set_weight(50)
    await store.set_flag_routes("beta", ["/beta"])
    await store.set_flag("beta", True)
    return await store.read_snapshot()


async def test_redis_restarted_empty_under_load_fails_no_request_and_the_state_comes_back(
    volatile_redis: RedisServer, vstore: StateStore, processes: Supervisor
) -> None:
    prod = start_backend(processes, "p1", b"hello from p1", sys.executable)
    canary = start_backend(processes, "s1", b"hello from s1", sys.executable)
    before = await _populate(vstore, prod, canary)
    first = await vstore.generation()
    assert first is not None
    proxies = [ProxyProcess(volatile_redis.url, env=FAST) for _ in range(2)]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in proxies))
        async with aiohttp.ClientSession() as s:
            statuses = [f"http://127.0.0.1:{p.admin_port}/status" for p in proxies]

            async def generations() -> set[object]:
                return {(await _json(s, url))["proxy"]["generation"] for url in statuses}

            await eventually(
                lambda: _same(generations, {first.id}), 10, "both proxies on the first generation"
            )
            load = Load(proxies[0].port, concurrency=8, max_requests=200_000)
            load.start()
            await load.until(500)
            lost_at = time.monotonic()
            await asyncio.to_thread(volatile_redis.stop)
            await load.until(500)
            await asyncio.to_thread(volatile_redis.start)

            def restored_on_both() -> Any:
                return _restored(s, statuses, first.id)

            await eventually(restored_on_both, 15, "both proxies on one new generation")
            back_s = time.monotonic() - lost_at
            await load.until(500)
            result = await load.stop()

            assert not result.failures, result.summary()
            assert set(result.statuses) == {200}, result.summary()
            state = await vstore.read_state()
            assert state.generation is not None and state.generation.cause == "restored"
            assert state.generation.id != first.id
            assert _content(state.snapshot) == _content(before)
            restores = [e for e in await vstore.audit_log(100) if e.what == "restore"]
            assert len(restores) == 1 and restores[0].who.startswith("proxy:")
            counted = 0
            for p in proxies:
                metrics = await _text(s, f"http://127.0.0.1:{p.admin_port}/metrics")
                assert "switchyard_state_lost 0.0" in metrics
                counted += sum(
                    int(float(line.split()[-1]))
                    for line in metrics.splitlines()
                    if line.startswith("switchyard_state_restores_total")
                )
            assert counted == 1

            # A later write works as usual, and reaches both.
            await vstore.set_weight(100)

            async def everywhere() -> bool:
                return all([await _weight(s, url, 100) for url in statuses])

            await eventually(everywhere, 5, "weight 100 on every proxy")
            print(f"\ndata-loss drill: {result.summary()}; state back after {back_s:.2f}s")
    finally:
        for p in proxies:
            p.cleanup()


async def _same(probe: Any, expected: set[object]) -> bool:
    return bool(await probe() == expected)


async def _restored(s: aiohttp.ClientSession, statuses: list[str], old: str) -> bool:
    seen = [(await _json(s, url))["proxy"] for url in statuses]
    gens = {p["generation"] for p in seen}
    return len(gens) == 1 and old not in gens and None not in gens and not any(p["state_lost"] for p in seen)


async def _weight(s: aiohttp.ClientSession, url: str, weight: int) -> bool:
    return bool((await _json(s, url))["proxy"]["snapshot"]["weight"] == weight)


async def test_a_proxy_that_does_not_restore_reports_state_lost_and_follows_a_reset(
    store: StateStore, backends: dict[str, Backend], redis_url: str
) -> None:
    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    app = ProxyApp(proxy_config(redis_url, resync_interval_s=0.1, restore_lost_state=False))
    await app.start()
    try:
        before = app.snapshots.snapshot
        assert before.staging and app.snapshots.generation is not None
        await store.redis.flushall()  # a raw FLUSHALL is data loss, not a wish
        await eventually(lambda: app.snapshots.state_lost, 5, "the proxy to notice the loss")
        admin = f"http://127.0.0.1:{app.admin_port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
            body = (await _json(s, admin + "/status"))["proxy"]
            assert body["state_lost"] is True and body["snapshot"]["pools"]["staging"]
            assert "switchyard_state_lost 1.0" in await _text(s, admin + "/metrics")
            seen = set()
            for _ in range(200):
                async with s.get(f"http://127.0.0.1:{app.port}/") as r:
                    assert r.status == 200
                    seen.add(r.headers["X-Backend"])
            assert seen == {"production", "staging"}  # routing on from the snapshot
            assert app.snapshots.snapshot == before
            assert (await store.read_state()).generation is None  # and nothing was written

            refused = run_cli("state", "reset", env={"REDIS_URL": redis_url})
            assert refused.returncode == 2 and "--yes" in refused.stderr
            assert (await store.read_state()).generation is None
            done = await asyncio.to_thread(run_cli, "state", "reset", "--yes", env={"REDIS_URL": redis_url})
            assert done.returncode == 0, done.stderr
            await eventually(lambda: not app.snapshots.state_lost, 5, "the proxy to follow the reset")
            assert app.snapshots.snapshot.production == () and app.snapshots.snapshot.staging == ()
            generation = await store.generation()
            assert generation is not None and generation.cause == "reset"
            assert app.snapshots.generation == generation.id
            assert generation.id in done.stdout
            [entry] = await store.audit_log(1)
            assert entry.what == "reset" and entry.who.startswith("cli:")
            async with s.get(f"http://127.0.0.1:{app.port}/") as r:
                assert r.status == 503  # the operator asked for an empty state
    finally:
        await app.stop()
