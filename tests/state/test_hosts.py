"""Host samples on a real redis-server: latest sample with a TTL, history, bad entries."""

from __future__ import annotations

import time

from state import HostSample, HostStore, KeySpace, connect
from tests.support.wait import eventually


async def test_latest_sample_per_host_and_history(redis_url: str) -> None:
    client = connect(redis_url)
    hosts = HostStore(client, KeySpace())
    now = time.time()
    for i in range(3):
        await hosts.publish(HostSample("proxy-1", "proxy", 10.0 * i, 40.0, now + i), ttl_s=30)
    await hosts.publish(HostSample("app-1", "app", 5.0, 20.0, now), ttl_s=30)
    await client.set(KeySpace().host("broken"), "{not json")
    listed = await hosts.hosts()
    assert [(s.host, s.role, s.cpu_percent) for s in listed] == [
        ("app-1", "app", 5.0),
        ("proxy-1", "proxy", 20.0),
    ]
    history = await hosts.history("proxy-1", since=now + 1)
    assert [s.cpu_percent for s in history] == [10.0, 20.0]
    await client.aclose()


async def none_left(hosts: HostStore) -> bool:
    return not await hosts.hosts()


async def test_a_silent_host_drops_out(redis_url: str) -> None:
    client = connect(redis_url)
    hosts = HostStore(client, KeySpace())
    await hosts.publish(HostSample("gone", "app", 1.0, 1.0, time.time()), ttl_s=1)
    assert [s.host for s in await hosts.hosts()] == ["gone"]
    # Polling Redis for the expiry, bounded by the deadline.
    await eventually(lambda: none_left(hosts), 5, "the sample's TTL to end it", interval_s=0.05)
    await client.aclose()
