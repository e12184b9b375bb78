"""The worker on a real Redis: requests refused by the policy, the lock, scale-in from
host samples, losing the lock half-way, retiring everything on exit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from provisioner.app import Parts
from provisioner.scale.local import LocalProvider
from state import HostSample, HostStore, KeySpace, ScaleQueue, ServerRecord
from state.model import PoolName
from tests.support.backends import Backend
from tests.support.provisioner import PartsFactory
from tests.support.wait import async_wait_until


async def ask(parts: Parts, pool: PoolName = "production") -> dict[str, object]:
    """A scale request as the monitor makes it, served by the worker."""
    monitor = ScaleQueue(parts.redis, KeySpace(), actor="monitor:test")
    await parts.worker.queue.ensure_group()
    asked = await monitor.request(pool, "cpu 93% on proxy-1")
    assert asked is not None
    (req,) = await parts.worker.queue.claim("test-worker", block_ms=100)
    outcome = await parts.worker.serve(req)
    assert await monitor.pending(pool) is None  # closed: the monitor may ask again
    return outcome


async def test_requests_the_policy_refuses_are_closed_with_the_reason(make_parts: PartsFactory) -> None:
    parts = await make_parts(production_max=1)
    await parts.store.add_backend("production", "http://127.0.0.1:9001")
    outcome = await ask(parts)
    assert (
        outcome["result"] == "refused"
        and outcome["reason"] == "pool production has 1 backends, its maximum is 1"
    )
    audit = await parts.store.audit_log(3)
    assert audit[0].what == "scale:production" and audit[0].after == outcome
    assert await parts.registry.lock_holder() is None  # released

    cooling = await make_parts(cooldown_s=300)
    await cooling.registry.mark_scaled("production", "up")
    outcome = await ask(cooling)
    assert outcome["result"] == "refused" and str(outcome["reason"]).startswith("cooldown:")


async def test_a_held_lock_makes_the_request_wait_then_give_up(make_parts: PartsFactory) -> None:
    parts = await make_parts(lock_wait_s=0.3)
    assert await parts.registry.acquire_lock("another-worker", ttl_s=30)
    outcome = await ask(parts)
    assert (
        outcome["result"] == "busy" and outcome["reason"] == "the provisioning lock is held by another-worker"
    )
    assert await parts.registry.lock_holder() == "another-worker"


async def fake_app_server(parts: Parts, backend: Backend, name: str) -> ServerRecord:
    """A server as the local provider makes it (its directory), answering at `backend`,
    registered active: what a finished provisioning leaves, without the Ansible run."""
    provider = parts.provisioner.provider
    machine = await provider.create(name, "production", generation=(await parts.store.ensure_generation()).id)
    now = time.time() - 3600
    record = ServerRecord(
        name,
        "production",
        "local",
        "active",
        now,
        now,
        "w0",
        ref=machine.ref,
        address="127.0.0.1",
        url=backend.url,
    )
    await parts.registry.put(record)
    await parts.store.add_backend("production", backend.url)
    return record


async def publish_quiet(hosts: HostStore, host: str, cpu: float, window_s: float) -> None:
    now = time.time()
    for i in range(11):
        at = now - window_s + i * window_s / 10
        await hosts.publish(HostSample(host, "app", cpu, 30.0, at), ttl_s=60)


async def test_scale_in_retires_our_newest_server_once_every_app_host_is_quiet(
    make_parts: PartsFactory, backends: dict[str, Backend], tmp_path: Path
) -> None:
    parts = await make_parts(scale_in_window_s=5.0, sample_max_gap_s=1.0)
    await parts.store.add_backend(
        "production", "http://127.0.0.1:9001"
    )  # added by hand: never ours to retire
    ours = await fake_app_server(parts, backends["production"], "sy-prod-quiet")
    hosts = HostStore(parts.redis, KeySpace())

    assert await parts.worker.check_scale_in() == {"result": "none"}  # no samples yet
    await publish_quiet(hosts, "app-1", 5.0, 5.0)
    await publish_quiet(hosts, "app-2", 50.0, 5.0)
    assert await parts.worker.check_scale_in() == {"result": "none"}  # app-2 is busy
    # app-2 calms down: a fresh history of quiet samples.
    await parts.redis.delete(KeySpace().host_history("app-2"))
    await publish_quiet(hosts, "app-2", 3.0, 5.0)

    outcome = await parts.worker.check_scale_in()

    assert outcome is not None and outcome["result"] == "removed" and outcome["server"] == ours.id
    assert outcome["drained"] is True
    assert (await parts.store.read_snapshot()).production == ("http://127.0.0.1:9001",)
    assert await parts.registry.all() == [] and not Path(ours.ref).exists()
    assert (await parts.registry.marks("production")).down is not None
    # At the minimum now: nothing more to retire (and the hand-added backend never is).
    assert await parts.worker.check_scale_in() == {"result": "none"}
    assert (await parts.store.read_snapshot()).production == ("http://127.0.0.1:9001",)
    assert tmp_path.exists()


async def test_scale_in_skips_a_round_while_another_worker_holds_the_lock(make_parts: PartsFactory) -> None:
    parts = await make_parts()
    assert await parts.registry.acquire_lock("another-worker", ttl_s=30)
    assert await parts.worker.check_scale_in() is None


async def test_losing_the_lock_stops_the_provisioning_and_undoes_it(
    make_parts: PartsFactory, tmp_path: Path
) -> None:
    parts = await make_parts(lock_ttl_s=0.6)
    job = asyncio.ensure_future(parts.worker.locked(lambda: parts.worker.scale_up("production", "test")))
    servers = tmp_path / "servers"
    await async_wait_until(
        lambda: servers.exists() and any(servers.glob("*/releases")), 60, "the deploy to begin"
    )
    # Someone took the lock over (it expired while this worker was stuck, say).
    await parts.redis.set(KeySpace().provision_lock, "another-worker")
    outcome = await asyncio.wait_for(job, 60)
    assert outcome == {"result": "failed", "reason": "lost the provisioning lock; the operation was undone"}
    assert await parts.registry.all() == [] and list(servers.iterdir()) == []
    assert (await parts.store.read_snapshot()).production == ()
    assert await parts.registry.lock_holder() == "another-worker"  # not released: it is not ours


async def test_retire_all_on_exit(make_parts: PartsFactory, backends: dict[str, Backend]) -> None:
    parts = await make_parts(destroy_on_exit=True)
    a = await fake_app_server(parts, backends["production"], "sy-prod-a")
    b = await fake_app_server(parts, backends["staging"], "sy-prod-b")
    stop = asyncio.Event()
    stop.set()
    await parts.worker.run(stop)  # stops at once, then retires what it made
    assert await parts.registry.all() == []
    assert not Path(a.ref).exists() and not Path(b.ref).exists()
    assert (await parts.store.read_snapshot()).production == ()
    assert isinstance(parts.provisioner.provider, LocalProvider)


async def test_a_stopped_worker_undoes_its_operation_and_leaves_the_request_to_others(
    make_parts: PartsFactory, tmp_path: Path
) -> None:
    parts = await make_parts()
    monitor = ScaleQueue(parts.redis, KeySpace(), actor="monitor:test")
    asked = await monitor.request("production", "cpu")
    assert asked is not None
    stop = asyncio.Event()
    running = asyncio.create_task(parts.worker.run(stop))
    servers = tmp_path / "servers"
    await async_wait_until(
        lambda: servers.exists() and any(servers.glob("*/releases")), 60, "the deploy to begin"
    )

    stop.set()
    await asyncio.wait_for(running, 60)

    assert list(servers.iterdir()) == [] and await parts.registry.all() == []
    assert (await parts.store.read_snapshot()).production == ()
    assert await parts.registry.lock_holder() is None
    # Not acknowledged: another worker picks the request up.
    (again,) = await parts.worker.queue.claim("other-worker", block_ms=100, reclaim_idle_ms=0)
    assert again.request == asked.request and await monitor.pending("production") == asked.request
