"""Scale requests on a real redis-server: one open request per pool, consumer-group
delivery, reclaiming from a dead worker, and the audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from state import InvalidValue, KeySpace, ScaleQueue, StateStore, connect


@pytest.fixture
async def queues(redis_url: str) -> AsyncIterator[tuple[ScaleQueue, ScaleQueue, StateStore]]:
    client = connect(redis_url)
    monitor = ScaleQueue(client, KeySpace(), actor="monitor:proxy-1")
    worker = ScaleQueue(client, KeySpace(), actor="provisioner:w1")
    await worker.ensure_group()
    yield monitor, worker, StateStore(client, KeySpace())
    await client.aclose()


async def test_one_open_request_per_pool(queues: tuple[ScaleQueue, ScaleQueue, StateStore]) -> None:
    monitor, _worker, _ = queues
    first = await monitor.request("production", "cpu 93% on proxy-1")
    assert first is not None and first.pool == "production" and first.by == "monitor:proxy-1"
    assert await monitor.request("production", "cpu 95% on proxy-1") is None
    assert await monitor.pending("production") == first.request
    # Another pool is independent.
    assert await monitor.request("staging", "cpu") is not None


async def test_a_worker_claims_serves_and_closes_a_request(
    queues: tuple[ScaleQueue, ScaleQueue, StateStore],
) -> None:
    monitor, worker, store = queues
    asked = await monitor.request("production", "cpu 93%")
    assert asked is not None
    got = await worker.claim("w1", block_ms=100)
    assert [(r.request, r.pool, r.reason) for r in got] == [(asked.request, "production", "cpu 93%")]
    assert await worker.claim("w1", block_ms=50) == []  # delivered once
    await worker.done(got[0], {"server": "http://127.0.0.1:9001"})
    assert await monitor.pending("production") is None
    assert await monitor.request("production", "cpu again") is not None
    entries = await store.audit_log(5)
    closed = next(e for e in entries if e.after == {"server": "http://127.0.0.1:9001"})
    assert closed.what == "scale:production" and closed.who == "provisioner:w1"


async def test_a_dead_workers_request_is_claimed_by_another(
    queues: tuple[ScaleQueue, ScaleQueue, StateStore],
) -> None:
    monitor, worker, _ = queues
    await monitor.request("production", "cpu")
    (held,) = await worker.claim("dead-worker", block_ms=100)
    # Not yet idle long enough: the other worker leaves it alone and waits for new ones.
    assert await worker.claim("w2", block_ms=50, reclaim_idle_ms=60_000) == []
    (reclaimed,) = await worker.claim("w2", block_ms=50, reclaim_idle_ms=0)
    assert reclaimed.request == held.request


async def test_touch_keeps_a_long_request_from_being_reclaimed(
    queues: tuple[ScaleQueue, ScaleQueue, StateStore],
) -> None:
    monitor, worker, store = queues
    await monitor.request("production", "cpu")
    (held,) = await worker.claim("w1", block_ms=100)
    await worker.touch(held, "w1")
    pending = await store.redis.xpending_range(
        store.keys.scale_requests, "provisioners", min="-", max="+", count=10
    )
    assert [(p["message_id"], p["consumer"]) for p in pending] == [(held.entry_id, "w1")]
    assert pending[0]["time_since_delivered"] < 1000


async def test_malformed_entries_are_skipped_and_acknowledged(
    queues: tuple[ScaleQueue, ScaleQueue, StateStore],
) -> None:
    _monitor, worker, store = queues
    await store.redis.xadd(store.keys.scale_requests, {"pool": "moon", "reason": "x"})
    assert await worker.claim("w1", block_ms=100) == []
    pending = await store.redis.xpending(store.keys.scale_requests, "provisioners")
    assert pending["pending"] == 0


async def test_an_unknown_pool_is_refused(queues: tuple[ScaleQueue, ScaleQueue, StateStore]) -> None:
    monitor, _worker, _ = queues
    with pytest.raises(InvalidValue, match="unknown pool"):
        await monitor.request("moon", "x")  # type: ignore[arg-type]
