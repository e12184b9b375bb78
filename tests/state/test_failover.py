"""Redis failover through Sentinel, for real: one master, one replica, three Sentinels.

Two proxies, a monitor and a provisioner worker take REDIS_URL=redis+sentinel://...
from the environment. The master is killed (SIGKILL) under load through both
proxies: no request fails (the data path never waits on Redis), a write made once
the replica took over reaches both proxies through pub/sub alone (their timed
re-read is set to a minute), and the monitor and the worker write to the new
master. Prints the failed requests and the seconds from the kill until writes work.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from state import KeySpace, ScaleQueue, StateError, StateStore, connect
from state.hosts import HostStore
from tests.support import ROOT
from tests.support.backends import Backend
from tests.support.load import Load
from tests.support.procs import stop_process
from tests.support.proxy import ProxyProcess
from tests.support.sentinel import SentinelCluster
from tests.support.wait import eventually

KEYS = KeySpace()


def _env(url: str, **extra: str) -> dict[str, str]:
    own = ("PROXY_", "MONITOR_", "PROVISIONER_", "SMTP_", "ALERT_", "DIGITALOCEAN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own) and k != "REDIS_URL"}
    return {**env, "REDIS_URL": url, **extra}


def _child(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)


async def _write_until_it_works(store: StateStore, weight: int, timeout_s: float) -> tuple[float, int]:
    """(seconds until a write succeeded, writes refused before it), trying every 50 ms."""
    start, refused = time.monotonic(), 0
    while True:
        try:
            await store.set_weight(weight)
            return time.monotonic() - start, refused
        except StateError:
            refused += 1
            assert time.monotonic() - start < timeout_s, f"no write worked for {timeout_s}s after the kill"
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(180)  # seven processes and a failover on a shared 2-core machine
async def test_killing_the_master_under_load_loses_no_request_and_writes_resume(
    sentinel_cluster: SentinelCluster, backends: dict[str, Backend], tmp_path: Path
) -> None:
    url = sentinel_cluster.url
    client = connect(url)
    store = StateStore(client, KEYS, actor="test")
    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    await store.set_weight(30)

    proxy_env = _env(url, PROXY_RESYNC_INTERVAL_S="60", PROXY_HEARTBEAT_INTERVAL_S="0.2")
    proxies = [ProxyProcess("", env=proxy_env) for _ in range(2)]
    children: list[subprocess.Popen[bytes]] = []
    loads: list[Load] = []
    outputs: list[str] = []
    try:
        for p in proxies:
            p.start()
        monitor_log, worker_log = tmp_path / "monitor.log", tmp_path / "worker.log"
        children.append(_child(
            [sys.executable, "-m", "monitor", "run", "--role", "proxy", "--name", "failover-host",
             "--interval-s", "0.2", "--source", f"pid:{proxies[0].pid}"],
            _env(url), monitor_log))  # fmt: skip
        # At its maximum of one production server, the worker answers a scale request
        # with a refusal: a read and a write on the new master, and no server started.
        children.append(_child(
            [sys.executable, "-m", "provisioner", "worker", "--provider", "local"],
            _env(url, PROVISIONER_LOCAL_DIR=str(tmp_path / "servers"), PROVISIONER_PRODUCTION_MAX="1",
                 PROVISIONER_SCALE_IN_CHECK_S="3600"),
            worker_log))  # fmt: skip
        hosts = HostStore(client, KEYS)
        await eventually(lambda: _sampled(hosts, 0.0), 20, "the monitor's first sample")

        loads = [Load(p.port, concurrency=4) for p in proxies]
        for load in loads:
            load.start()
        for load in loads:
            await load.until(200)

        old = await asyncio.to_thread(sentinel_cluster.kill_master)
        killed_at, killed_wall = time.monotonic(), time.time()
        writes_back_s, refused = await _write_until_it_works(store, 70, 30)
        # The write went to the new master as soon as the Sentinel asked named it; the
        # other Sentinels may take a moment longer to agree.
        await eventually(
            lambda: asyncio.to_thread(sentinel_cluster.new_master_ready, old),
            10,
            "every Sentinel to name the new master",
            interval_s=0.05,
        )
        version = (await store.read_snapshot()).version

        async def every_proxy_routes_it() -> bool:
            seen = {i.id: i.info.get("version") for i in await store.instances()}
            mine = [v for k, v in seen.items() if k.endswith((f":{proxies[0].port}", f":{proxies[1].port}"))]
            return len(mine) == 2 and all(isinstance(v, int) and v >= version for v in mine)

        reached_s = await eventually(every_proxy_routes_it, 10, "both proxies to route with the new write")
        await eventually(lambda: _sampled(hosts, killed_wall), 15, "a monitor sample on the new master")
        scale = ScaleQueue(client, KEYS, actor="test")
        assert await scale.request("production", "failover test") is not None
        await eventually(lambda: _served(scale), 15, "the worker to answer a request on the new master")
        for load in loads:
            await load.until(200)
        carried_on_s = time.monotonic() - killed_at
    finally:
        results = [await load.stop() for load in loads]
        for child in children:
            stop_process(child)
        for p in proxies:
            p.stop()
            outputs.append(p.output())
            p.cleanup()
        await client.aclose()

    failed = sum(len(r.failures) for r in results)
    total = sum(r.ok for r in results) + failed
    print(
        f"\nsentinel failover: {failed} failed of {total} requests through 2 proxies;"
        f" writes work again {writes_back_s:.2f}s after the kill ({refused} refused cleanly before);"
        f" both proxies routed with it {reached_s:.2f}s later; monitor and worker wrote within"
        f" {carried_on_s:.1f}s"
    )
    assert failed == 0, [r.summary() for r in results]
    for output in [*outputs, monitor_log.read_text(), worker_log.read_text()]:
        assert "Traceback" not in output and "never retrieved" not in output, output[-3000:]
    assert children[0].returncode == 0 and children[1].returncode == 0


async def _sampled(hosts: HostStore, since: float) -> bool:
    try:
        return any(s.host == "failover-host" and s.at > since for s in await hosts.hosts())
    except StateError:
        return False


async def _served(scale: ScaleQueue) -> bool:
    return await scale.pending("production") is None
