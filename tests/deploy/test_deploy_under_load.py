"""Deploys and rollbacks under load: `python -m proxy serve` in front of two local
production servers, a bounded load through it. Not one request fails either way:

* kept warm (the default): the new release starts on each server's side port, the pool
  moves to it in one Redis write, and the release it replaced keeps running; a rollback
  moves the pool back to it and stops the one it leaves, restarting nothing;
* restarted (`deploy_keep_warm = 0`): server by server, drained, restarted, put back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from provisioner.app import Parts, build_deployer
from provisioner.config import load_config
from provisioner.deploy.commands import DeployParts
from state import DeployRecord, ServerRecord
from tests.support.deploy import AppRepo, current, releases, servers
from tests.support.load import Load, LoadResult
from tests.support.provisioner import BIN_DIR, PartsFactory
from tests.support.proxy import ProxyProcess


@dataclass(frozen=True)
class Pool:
    parts: Parts
    servers: tuple[ServerRecord, ServerRecord]
    proxy: ProxyProcess


@pytest.fixture
async def pool(make_parts: PartsFactory, proxy_process: Callable[..., ProxyProcess]) -> Pool:
    """Two local production servers behind `python -m proxy serve`, no staging."""
    parts = await make_parts()
    a, b = await servers(parts, "production", "production")
    await parts.store.set_weight(0)  # every request is production's
    # Heartbeats every 0.2 s: the proxies' let-go of a server is seen at once.
    return Pool(parts, (a, b), proxy_process(env={"PROXY_HEARTBEAT_INTERVAL_S": "0.2"}))


def deployer(redis_url: str, tmp_path: Path, said: list[str], **settings: object) -> DeployParts:
    config = load_config(
        base={
            "redis_url": redis_url,
            "local_dir": str(tmp_path / "servers"),
            "local_python": str(BIN_DIR / "python"),
            "worker_id": "test",
            "health_timeout_s": 10.0,
            **settings,
        }
    )
    return build_deployer(config, bin_dir=BIN_DIR, actor="test", out=said.append)


@asynccontextmanager
async def under_load(proxy: ProxyProcess, outcome: list[LoadResult]) -> AsyncIterator[None]:
    # Bounded, but not below what a slow machine's deploy takes: 100,000 ran out mid-deploy
    # at a load average of 7, and the check that traffic still flows after it then failed.
    load = Load(proxy.port, concurrency=4, path="/version", max_requests=1_000_000)
    load.start()
    try:
        await load.until(200)
        yield
        await load.until(200)
    finally:
        outcome.append(await load.stop())


async def versions(proxy: ProxyProcess, n: int = 20) -> Counter[str]:
    seen: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            async with session.get(f"http://127.0.0.1:{proxy.port}/version") as response:
                seen[(await response.text()).strip()] += 1
    return seen


async def version_at(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url + "/version") as response:
        return (await response.text()).strip()


def succeeded(record: DeployRecord, said: list[str], load: LoadResult) -> None:
    assert record.result == "succeeded", f"{record.error}\n" + "\n".join(said)
    assert load.failures == [], load.summary()
    assert load.ok >= 400, load.summary()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_warm_deploy_and_its_rollback_under_load_fail_no_request_and_restart_nothing(
    app_repo: AppRepo, pool: Pool, redis_url: str, tmp_path: Path
) -> None:
    store, registry, proxy = pool.parts.store, pool.parts.registry, pool.proxy
    a, b = pool.servers
    before = {s.id: current(s).name for s in (a, b)}
    sha = app_repo.commit("under load")
    assert app_repo.push("main").returncode == 0  # no hooks here: the deploy is run below
    said: list[str] = []
    deploy = deployer(redis_url, tmp_path, said)
    loads: list[LoadResult] = []
    try:
        async with under_load(proxy, loads):
            started = time.monotonic()
            record = await deploy.deployer.deploy("production", sha, app_repo.bare)
            print(f"warm deploy under load: {time.monotonic() - started:.1f}s")
        succeeded(record, said, loads[-1])
        assert not [line for line in said if "drained from" in line], said  # no server left its pool
        assert any("every proxy routes to the new release" in line for line in said), said
        moved = {r.id: r for r in await registry.all()}
        for server in (a, b):
            now = moved[server.id]
            # Live on the side port; the release it replaced still runs on its old port, warm.
            assert now.url != server.url and now.warm_url == server.url, now
            assert current(now).name.endswith("-" + sha[:8])
            assert await version_at(now.url) == f"v1-{sha[:8]}"
            assert await version_at(now.warm_url) == "v1"
        assert (await store.read_snapshot()).production == tuple(sorted(r.url for r in moved.values()))
        assert await versions(proxy) == {f"v1-{sha[:8]}": 20}

        said.clear()
        async with under_load(proxy, loads):
            started = time.monotonic()
            back = await deploy.deployer.rollback("production")
            print(f"warm rollback under load: {time.monotonic() - started:.1f}s, {loads[-1].summary()}")
        succeeded(back, said, loads[-1])
        assert any("every proxy routes to the warm release" in line for line in said), said
        assert await versions(proxy) == {"v1": 20}
        for server in (a, b):
            rolled: ServerRecord | None = await registry.get(server.id)
            assert rolled is not None and rolled.url == server.url and rolled.warm_url == "", rolled
            assert current(rolled).name == before[server.id]
            # The release rolled back from is stopped and removed, as a restarting rollback does.
            assert releases(rolled) == [before[server.id]]
            with pytest.raises(aiohttp.ClientConnectionError):
                await version_at(moved[server.id].url)
    finally:
        await deploy.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_restarting_deploy_under_load_fails_no_request(
    app_repo: AppRepo, pool: Pool, redis_url: str, tmp_path: Path
) -> None:
    store, proxy = pool.parts.store, pool.proxy
    a, b = pool.servers
    sha = app_repo.commit("under load")
    assert app_repo.push("main").returncode == 0
    said: list[str] = []
    deploy = deployer(redis_url, tmp_path, said, deploy_keep_warm=False)
    loads: list[LoadResult] = []
    try:
        async with under_load(proxy, loads):
            started = time.monotonic()
            record = await deploy.deployer.deploy("production", sha, app_repo.bare)
            print(f"restarting deploy under load: {time.monotonic() - started:.1f}s, {loads[-1:]}")
    finally:
        await deploy.close()
    succeeded(record, said, loads[-1])
    # One at a time (in the order of their ids): the second was drained only after the
    # first was back.
    first, second = sorted((a.id, b.id))
    assert [line.split(":")[0] for line in said if "drained from" in line or "back in" in line] == [
        first,
        first,
        second,
        second,
    ]
    for server in (a, b):
        assert current(server).name.endswith("-" + sha[:8])
    assert (await store.read_snapshot()).production == tuple(sorted((a.url, b.url)))
    assert await versions(proxy) == {f"v1-{sha[:8]}": 20}
