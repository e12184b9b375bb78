"""state/deploys.py against a real redis-server: the lock, the history, the deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from provisioner.deploy.lock import locked
from provisioner.errors import DeployError
from state import DeployRecord, DeployStore, InvalidValue, KeySpace, StateStore, connect


@pytest.fixture
async def deploys(redis_url: str) -> AsyncIterator[DeployStore]:
    client = connect(redis_url)
    yield DeployStore(client, KeySpace(), actor="test")
    await client.aclose()


async def test_the_lock_is_per_environment_and_only_its_holder_frees_it(deploys: DeployStore) -> None:
    assert await deploys.acquire_lock("production", "one", 5)
    assert not await deploys.acquire_lock("production", "two", 5)
    assert await deploys.acquire_lock("staging", "two", 5)
    assert await deploys.lock_holder("production") == "one"
    assert not await deploys.release_lock("production", "two")
    assert not await deploys.refresh_lock("production", "two", 5)
    assert await deploys.refresh_lock("production", "one", 5)
    assert await deploys.release_lock("production", "one")
    assert await deploys.lock_holder("production") is None
    with pytest.raises(InvalidValue):
        await deploys.acquire_lock("canary", "x", 5)  # type: ignore[arg-type]


async def test_a_lock_expires_so_a_dead_deploy_holds_nothing_for_long(deploys: DeployStore) -> None:
    assert await deploys.acquire_lock("production", "dead", 0.2)
    got = False

    async def take() -> None:
        nonlocal got
        while not await deploys.acquire_lock("production", "next", 5):
            await asyncio.sleep(0.02)
        got = True

    await asyncio.wait_for(take(), 5)
    assert got and await deploys.lock_holder("production") == "next"


async def test_a_second_deploy_waits_for_the_first_and_gives_up_at_its_deadline(deploys: DeployStore) -> None:
    order: list[str] = []
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> str:
        order.append("first start")
        first_in.set()
        await release_first.wait()
        order.append("first end")
        return "first"

    async def second() -> str:
        order.append("second start")
        return "second"

    said: list[str] = []
    one = asyncio.create_task(
        locked(deploys, "production", "a", first, ttl_s=0.6, wait_s=10, say=said.append)
    )
    await first_in.wait()
    with pytest.raises(DeployError, match="held the lock for over 0s"):
        await locked(deploys, "production", "c", second, ttl_s=0.6, wait_s=0.05, say=said.append)
    two = asyncio.create_task(
        locked(deploys, "production", "b", second, ttl_s=0.6, wait_s=10, say=said.append)
    )
    # For twice the lock's TTL, the first keeps it (its keeper refreshes it) and the
    # second waits.
    loop = asyncio.get_running_loop()
    until = loop.time() + 1.2
    while loop.time() < until:
        assert order == ["first start"]
        assert (await deploys.lock_holder("production") or "").startswith("a:")
        await asyncio.sleep(0.05)
    release_first.set()
    assert await one == "first" and await two == "second"
    assert order == ["first start", "first end", "second start"]
    assert any("waiting for the production deploy under way (a:" in line for line in said)
    assert await deploys.lock_holder("production") is None


async def test_results_go_to_the_history_and_the_audit_log(deploys: DeployStore, store: StateStore) -> None:
    ok = DeployRecord("production", "deploy", "a" * 40, "succeeded", "hook", 100.0, 7.5, {"sy-1": "r1"})
    bad = DeployRecord(
        "production", "deploy", "b" * 40, "failed", "hook", 200.0, 2.0, {}, "sy-1", "app | build", "boom"
    )
    await deploys.record(ok)
    await deploys.record(bad)
    history = await deploys.history("production")
    assert [(h.sha[0], h.result, h.failed_task) for h in history] == [
        ("b", "failed", "app | build"),
        ("a", "succeeded", ""),
    ]
    assert history[1].releases == {"sy-1": "r1"} and history[1].seconds == 7.5
    assert (await deploys.last_good("production")) == history[1]
    assert await deploys.history("staging") == []
    audit = [(e.what, e.after, e.who) for e in await store.audit_log(5)]
    assert audit[:2] == [
        (
            "deploy:production",
            {
                "action": "deploy",
                "sha": "b" * 40,
                "result": "failed",
                "failed_host": "sy-1",
                "failed_task": "app | build",
            },
            "hook",
        ),
        (
            "deploy:production",
            {"action": "deploy", "sha": "a" * 40, "result": "succeeded", "releases": {"sy-1": "r1"}},
            "hook",
        ),
    ]


async def test_a_delivery_is_accepted_once_within_its_ttl(deploys: DeployStore) -> None:
    assert await deploys.remember_delivery("72d3162e-cc78-11e3-81ab-4c9367dc0958", 0.3)
    assert not await deploys.remember_delivery("72d3162e-cc78-11e3-81ab-4c9367dc0958", 0.3)
    assert await deploys.remember_delivery("another", 0.3)
    for bad in ("", "a b", "x" * 129, "../etc"):
        with pytest.raises(InvalidValue):
            await deploys.remember_delivery(bad, 1)

    async def again() -> None:
        while not await deploys.remember_delivery("72d3162e-cc78-11e3-81ab-4c9367dc0958", 5):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(again(), 5)  # forgotten after the TTL
