"""One claim per host on the kill switch: two proxy hosts' monitors, either may stop the
canary, and only the last one to resolve clears it. A human's alert stays."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from state import KeySpace, StateStore, connect
from state.claims import AlertClaims

KEYS = KeySpace()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = connect(redis_url)
    yield c
    await c.aclose()


def monitors(client: aioredis.Redis) -> tuple[AlertClaims, AlertClaims, StateStore]:
    return (
        AlertClaims(client, KEYS, actor="monitor:proxy-a"),
        AlertClaims(client, KEYS, actor="monitor:proxy-b"),
        StateStore(client, KEYS, actor="test"),
    )


async def test_the_alert_is_cleared_when_the_last_claim_resolves(client: aioredis.Redis) -> None:
    a, b, store = monitors(client)
    await a.claim("proxy-a", "proxy-a: cpu 95% > 90%")
    await b.claim("proxy-b", "proxy-b: cpu 93% > 90%")
    alert = (await store.read_snapshot()).alert
    assert alert is not None and alert.by == "monitor:proxy-a"

    # proxy-a recovers first: proxy-b still needs the canary stopped, and now holds the alert.
    change = await a.release("proxy-a")
    alert = (await store.read_snapshot()).alert
    assert alert is not None and (alert.by, alert.reason) == ("monitor:proxy-b", "proxy-b: cpu 93% > 90%")
    assert change.changed and set(await a.claims()) == {"proxy-b"}

    await b.release("proxy-b")
    assert (await store.read_snapshot()).alert is None
    assert await a.claims() == {}
    whats = [e.what for e in await store.audit_log(10)]
    assert whats.count("alert") == 4


async def test_either_order_and_a_repeated_claim_change_nothing_twice(client: aioredis.Redis) -> None:
    a, b, store = monitors(client)
    await a.claim("proxy-a", "a")
    version = (await store.read_snapshot()).version
    assert not (await a.claim("proxy-a", "a again")).changed
    assert (await store.read_snapshot()).version == version
    await b.claim("proxy-b", "b")
    await b.release("proxy-b")
    alert = (await store.read_snapshot()).alert
    assert alert is not None and alert.by == "monitor:proxy-a"
    await a.release("proxy-a")
    assert (await store.read_snapshot()).alert is None


async def test_a_humans_alert_outlives_every_claim(client: aioredis.Redis) -> None:
    a, b, store = monitors(client)
    await StateStore(client, KEYS, actor="cli:alice@laptop").set_alert("deploy in progress")
    await a.claim("proxy-a", "a")
    await b.claim("proxy-b", "b")
    await a.release("proxy-a")
    await b.release("proxy-b")
    alert = (await store.read_snapshot()).alert
    assert alert is not None and (alert.by, alert.reason) == ("cli:alice@laptop", "deploy in progress")
    assert await a.claims() == {}


async def test_an_operators_clear_takes_the_claims_so_a_dead_monitors_cannot_inherit(
    client: aioredis.Redis,
) -> None:
    a, b, store = monitors(client)
    await a.claim("proxy-a", "a")  # proxy-a's monitor then dies: it never releases
    await StateStore(client, KEYS, actor="cli:alice@laptop").clear_alert()
    assert (await store.read_snapshot()).alert is None and await a.claims() == {}
    # proxy-b alerts and recovers: the alert goes with it, not to proxy-a's old claim.
    await b.claim("proxy-b", "b")
    await b.release("proxy-b")
    assert (await store.read_snapshot()).alert is None
    # A clear only of one's own alert (a rollout's) leaves the monitors' claims alone.
    await a.claim("proxy-a", "a")
    await StateStore(client, KEYS, actor="rollout").clear_alert(only_if_by="rollout")
    assert set(await a.claims()) == {"proxy-a"}


async def test_an_alert_set_before_claims_existed_is_still_cleared_by_its_monitor(
    client: aioredis.Redis,
) -> None:
    a, _, store = monitors(client)
    await StateStore(client, KEYS, actor="monitor:proxy-a").set_alert("set by the old code")
    await a.release("proxy-a")
    assert (await store.read_snapshot()).alert is None
