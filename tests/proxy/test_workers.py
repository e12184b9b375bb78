"""`serve --workers N`: processes sharing the port, restarted when they die,
replaced one by one on SIGHUP and stopped together on SIGTERM, under load."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from state import InstanceInfo, StateStore
from tests.support.backends import Backend
from tests.support.load import Load
from tests.support.proxy import ProxyProcess
from tests.support.wait import async_wait_until

ENV = {"PROXY_HEARTBEAT_INTERVAL_S": "0.2", "PROXY_SHUTDOWN_TIMEOUT_S": "5"}


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


async def live_pids(store: StateStore) -> set[int]:
    instances: list[InstanceInfo] = await store.instances()
    return {int(str(i.info["pid"])) for i in instances}


def admin_healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


async def test_workers_share_the_port_and_survive_a_crash_and_a_reload(
    proxy_process: Callable[..., ProxyProcess], store: StateStore, backends: dict[str, Backend]
) -> None:
    await store.add_backend("production", backends["production"].url)
    proc = await asyncio.to_thread(proxy_process, "--workers", "3", env=ENV, admin_ports=3)
    try:
        await async_wait_until(lambda: len(children(proc.pid)) == 3, 20, "three workers")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{proc.output()}") from None
    workers = children(proc.pid)
    # Each worker has its own snapshot subscription and heartbeat, and its own admin port.
    pids: set[int] = set()

    async def three_live() -> bool:
        pids.clear()
        pids.update(await live_pids(store))
        return pids == workers

    await async_wait_until(
        three_live,
        10,
        "a heartbeat per worker",
        interval_s=0.05,
        detail=lambda: f": heartbeats {pids} != workers {workers}",
    )
    await async_wait_until(
        lambda: all(admin_healthy(proc.admin_port + i) for i in range(3)), 10, "three admin ports"
    )

    load = Load(proc.port, concurrency=8)
    load.start()
    await load.until(300)

    # A worker killed outright is replaced; the shared socket keeps accepting meanwhile.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    await async_wait_until(lambda: len(children(proc.pid) - {victim}) == 3, 15, "a replacement worker")
    await load.until(300)
    crashed = await load.stop()
    # Only requests in flight on the killed worker can fail: it died with them.
    assert len(crashed.failures) <= 8, crashed.summary()

    load = Load(proc.port, concurrency=8)
    load.start()
    await load.until(300)
    before = children(proc.pid)
    os.kill(proc.pid, signal.SIGHUP)
    await async_wait_until(lambda: not (children(proc.pid) & before), 30, "every worker to be replaced")
    await async_wait_until(lambda: len(children(proc.pid)) == 3, 10, "three workers after the reload")
    await load.until(300)
    reloaded = await load.stop()
    assert reloaded.failures == [], reloaded.summary()
    assert "reloading 3 workers" in proc.output()

    assert proc.stop() == 0
    assert children(proc.pid) == set()
    assert "Traceback" not in proc.output()
