"""A deploy under load: `python -m proxy serve` in front of two local production servers,
a bounded load through it, a deploy of a new commit server by server. Not one request
fails, and afterwards every answer comes from the new release."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from provisioner.app import build_deployer
from provisioner.config import load_config
from tests.support.deploy import AppRepo, current, servers
from tests.support.load import Load
from tests.support.provisioner import BIN_DIR, PartsFactory
from tests.support.proxy import ProxyProcess


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_deploy_under_load_fails_no_request(
    app_repo: AppRepo,
    make_parts: PartsFactory,
    proxy_process: Callable[..., ProxyProcess],
    redis_url: str,
    tmp_path: Path,
) -> None:
    parts = await make_parts()
    store = parts.store
    a, b = await servers(parts, "production", "production")
    await store.set_weight(0)  # no staging pool here: every request is production's
    # Heartbeats every 0.2 s: a drain ends as soon as the proxy says it has let go.
    proxy = proxy_process(env={"PROXY_HEARTBEAT_INTERVAL_S": "0.2"})
    sha = app_repo.commit("under load")
    assert app_repo.push("main").returncode == 0  # no hooks here: the deploy is run below

    config = load_config(
        base={
            "redis_url": redis_url,
            "local_dir": str(tmp_path / "servers"),
            "local_python": str(BIN_DIR / "python"),
            "worker_id": "test",
            "health_timeout_s": 10.0,
        }
    )
    said: list[str] = []
    deploy = build_deployer(config, bin_dir=BIN_DIR, actor="test", out=said.append)
    # Bounded, but not below what a slow machine's deploy takes: 100,000 ran out mid-deploy
    # at a load average of 7, and the check that traffic still flows after it then failed.
    load = Load(proxy.port, concurrency=4, path="/version", max_requests=1_000_000)
    load.start()
    try:
        await load.until(200)
        started = time.monotonic()
        record = await deploy.deployer.deploy("production", sha, app_repo.bare)
        took = time.monotonic() - started
        await load.until(200)
    finally:
        result = await load.stop()
        await deploy.close()
    assert record.result == "succeeded", f"{record.error}\n" + "\n".join(said)
    assert result.failures == [], result.summary()
    assert result.ok >= 400, result.summary()
    print(f"deploy under load: {took:.1f}s, {result.summary()}")

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
    seen: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.get(f"http://127.0.0.1:{proxy.port}/version") as response:
                seen[(await response.text()).strip()] += 1
    assert seen == {f"v1-{sha[:8]}": 20}
