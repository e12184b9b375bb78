"""StateStore against a real redis-server: atomic writes, audit, notices, ownership."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from state import Alert, Change, KeySpace, StateStore, StateUnavailable, connect
from tests.support.ports import free_port

Op = Callable[[StateStore], Awaitable[Change]]


class Notices:
    """A pub/sub subscriber on the changes channel, confirmed before any write."""

    def __init__(self, store: StateStore) -> None:
        self.pubsub = store.redis.pubsub()
        self.channel = store.keys.changes

    async def start(self) -> None:
        await self.pubsub.subscribe(self.channel)
        # Wait for the confirmation: only then is a later PUBLISH sure to reach us.
        message = await self._next(5.0, want="subscribe")
        assert message == self.channel

    async def next(self, timeout_s: float = 5.0) -> str:
        return await self._next(timeout_s, want="message")

    async def _next(self, timeout_s: float, *, want: str) -> str:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            message = await self.pubsub.get_message(timeout=min(left, 1.0))
            if message is not None and message["type"] == want:
                return str(message["data"] if want == "message" else message["channel"])
        raise AssertionError(f"no {want} on {self.channel} within {timeout_s}s")

    async def close(self) -> None:
        await self.pubsub.aclose()


@contextlib.asynccontextmanager
async def notices(store: StateStore) -> AsyncIterator[Notices]:
    listener = Notices(store)
    try:
        await listener.start()
        yield listener
    finally:
        await listener.close()


async def audit_length(store: StateStore) -> int:
    return int(await store.redis.xlen(store.keys.audit))


@dataclass(frozen=True)
class Write:
    what: str
    act: Op
    before: object
    after: object
    setup: Op | None = None


async def _add_a(s: StateStore) -> Change:
    return await s.add_backend("production", "http://127.0.0.1:9001")


async def _set_alert(s: StateStore) -> Change:
    return await s.set_alert("5xx over 2%")


WRITES = [
    Write("weight", lambda s: s.set_weight(50), 30, 50),
    Write("weight", lambda s: s.set_weight("0"), 30, 0),
    Write("pool:production", _add_a, [], ["http://127.0.0.1:9001"]),
    Write(
        "pool:staging",
        lambda s: s.add_backend("staging", "http://[::1]:9002/"),
        [],
        ["http://[::1]:9002"],
    ),
    Write(
        "pool:production",
        lambda s: s.remove_backend("production", "http://127.0.0.1:9001"),
        ["http://127.0.0.1:9001"],
        [],
        setup=_add_a,
    ),
    Write("flag:beta", lambda s: s.set_flag("beta", True), None, True),
    Write("flag:disableSET", lambda s: s.set_flag("disableSET", False), None, False),
    Write("flag_routes:beta", lambda s: s.set_flag_routes("beta", ["/beta/", "/b"]), [], ["/b", "/beta"]),
    Write("flag_routes:disableSET", lambda s: s.set_flag_routes("disableSET", []), ["/set"], []),
    Write("alert", _set_alert, None, {"by": "test", "reason": "5xx over 2%"}),
    Write(
        "alert", lambda s: s.clear_alert(), {"by": "test", "reason": "5xx over 2%"}, None, setup=_set_alert
    ),
]


def _without_time(value: object) -> object:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "at"}
    return value


@pytest.mark.parametrize("write", WRITES, ids=lambda w: f"{w.what}->{w.after}")
async def test_every_write_bumps_version_audits_once_and_publishes(store: StateStore, write: Write) -> None:
    if write.setup is not None:
        assert (await write.setup(store)).changed
    version = (await store.read_snapshot()).version
    audited = await audit_length(store)

    async with notices(store) as listener:
        change = await write.act(store)
        assert await listener.next() == write.what

    assert change.changed
    assert change.what == write.what
    assert _without_time(change.before) == write.before
    assert _without_time(change.after) == write.after
    assert (await store.read_snapshot()).version == version + 1
    assert await audit_length(store) == audited + 1
    entry = (await store.audit_log(1))[0]
    assert entry.what == write.what
    assert _without_time(entry.before) == write.before
    assert _without_time(entry.after) == write.after
    assert entry.who == "test"
    assert abs(entry.at - time.time()) < 60


@pytest.mark.parametrize(
    "repeat",
    [
        _add_a,
        lambda s: s.add_backend("production", "http://127.0.0.1:9001/"),  # same backend, other spelling
    ],
    ids=["same", "canonically-same"],
)
async def test_an_unchanged_write_bumps_nothing_audits_nothing_publishes_nothing(
    store: StateStore, repeat: Op
) -> None:
    await _add_a(store)
    version = (await store.read_snapshot()).version
    audited = await audit_length(store)

    async with notices(store) as listener:
        change = await repeat(store)
        await store.set_weight(45)  # a marker: the first notice must be this one
        assert await listener.next() == "weight"

    assert not change.changed
    assert change.before == change.after == ["http://127.0.0.1:9001"]
    assert (await store.read_snapshot()).version == version + 1  # the marker's bump only
    assert await audit_length(store) == audited + 1
    assert [e.what for e in await store.audit_log(5)] == ["weight", "pool:production"]


@pytest.mark.parametrize(
    "same",
    [
        lambda s: s.set_weight(30),  # the default, not stored yet
        lambda s: s.remove_backend("staging", "http://127.0.0.1:9"),
        lambda s: s.set_flag_routes("disableSET", ["/set/"]),
        lambda s: s.clear_alert(),
    ],
    ids=["default-weight", "remove-absent", "default-routes", "clear-absent"],
)
async def test_writes_that_match_the_effective_value_change_nothing(store: StateStore, same: Op) -> None:
    change = await same(store)
    assert not change.changed
    assert (await store.read_snapshot()).version == 0
    assert await audit_length(store) == 0


async def test_read_snapshot_defaults_on_an_empty_redis(store: StateStore) -> None:
    snap = await store.read_snapshot()
    assert snap.version == 0
    assert snap.production == () and snap.staging == ()
    assert snap.weight == 30
    assert snap.alert is None
    assert dict(snap.flags) == {}
    assert dict(snap.flag_routes) == {"disableSET": ("/set",)}


async def test_read_snapshot_reads_hand_written_values(store: StateStore) -> None:
    keys = store.keys
    await store.redis.set(keys.alert, "yes")  # what the original system wrote
    await store.redis.sadd(keys.pool("production"), "http://b:2", "http://a:1")
    await store.redis.hset(keys.flags, mapping={"on": "1", "off": "0"})
    snap = await store.read_snapshot()
    assert snap.alert == Alert(by="unknown", reason="yes", at=None)
    assert snap.production == ("http://a:1", "http://b:2")  # sorted
    assert dict(snap.flags) == {"on": True, "off": False}
    assert snap.flags_on == ("on",)


@pytest.mark.parametrize("raw", ["abc", "130", "-5", ""])
async def test_a_hand_written_bad_weight_fails_safe_to_zero(store: StateStore, raw: str) -> None:
    await store.redis.set(store.keys.weight, raw)
    assert (await store.read_snapshot()).weight == 0


async def test_monitor_alert_is_cleared_by_the_monitor(store: StateStore) -> None:
    await store.set_alert("error rate", by="monitor")
    change = await store.clear_alert(only_if_by="monitor")
    assert change.changed
    assert (await store.read_snapshot()).alert is None


async def test_human_alert_is_not_cleared_by_the_monitor(store: StateStore) -> None:
    await store.set_alert("bad deploy", by="cli:alice@ops")
    version = (await store.read_snapshot()).version
    change = await store.clear_alert(only_if_by="monitor")
    assert not change.changed
    snap = await store.read_snapshot()
    assert snap.alert is not None
    assert (snap.alert.by, snap.alert.reason) == ("cli:alice@ops", "bad deploy")
    assert snap.version == version
    # A human may still clear it.
    assert (await store.clear_alert()).changed
    assert (await store.read_snapshot()).alert is None


async def test_a_bare_yes_alert_is_not_cleared_by_the_monitor(store: StateStore) -> None:
    await store.redis.set(store.keys.alert, "yes")
    assert not (await store.clear_alert(only_if_by="monitor")).changed
    assert (await store.read_snapshot()).alert is not None


async def test_re_setting_an_alert_keeps_the_first_setter(store: StateStore) -> None:
    first = await store.set_alert("bad deploy", by="cli:alice@ops")
    again = await store.set_alert("error rate", by="monitor")
    assert first.changed and not again.changed
    snap = await store.read_snapshot()
    assert snap.alert is not None
    assert (snap.alert.by, snap.alert.reason) == ("cli:alice@ops", "bad deploy")
    assert snap.version == 1
    # ...so the monitor cannot then clear what it did not set.
    assert not (await store.clear_alert(only_if_by="monitor")).changed


async def test_racing_alert_setters_leave_exactly_one_owner(store: StateStore) -> None:
    setters = ("cli:alice@ops", "monitor", "admin:10.0.0.5")
    changes = await asyncio.gather(*(store.set_alert(f"from {who}", by=who) for who in setters))
    winners = [who for who, c in zip(setters, changes, strict=True) if c.changed]
    assert len(winners) == 1
    alert = (await store.read_snapshot()).alert
    assert alert is not None
    assert (alert.by, alert.reason) == (winners[0], f"from {winners[0]}")
    assert await audit_length(store) == 1


async def test_set_alert_records_the_actor_by_default(store: StateStore) -> None:
    before = time.time()
    await store.set_alert("why")
    alert = (await store.read_snapshot()).alert
    assert alert is not None
    assert alert.by == "test" and alert.reason == "why"
    assert alert.at is not None and before - 1 <= alert.at <= time.time() + 1


async def test_50_concurrent_adds_all_land(store: StateStore) -> None:
    urls = [f"http://127.0.0.1:{10000 + i}" for i in range(50)]
    changes = await asyncio.gather(*(store.add_backend("production", u) for u in urls))
    assert all(c.changed for c in changes)
    snap = await store.read_snapshot()
    assert sorted(snap.production) == sorted(urls)
    assert snap.version == 50
    assert await audit_length(store) == 50
    # Each audit entry saw the pool as it was: the sizes before are 0..49, once each.
    sizes = sorted(len(e.before) for e in await store.audit_log(100))  # type: ignore[arg-type]
    assert sizes == list(range(50))


async def test_concurrent_adds_of_one_backend_change_it_once(store: StateStore) -> None:
    changes = await asyncio.gather(*(_add_a(store) for _ in range(20)))
    assert sum(c.changed for c in changes) == 1
    assert (await store.read_snapshot()).version == 1
    assert await audit_length(store) == 1


async def test_audit_log_is_newest_first_and_limited(store: StateStore) -> None:
    for weight in (10, 20, 30, 40):
        await store.set_weight(weight)
    entries = await store.audit_log(3)
    assert [e.after for e in entries] == [40, 30, 20]
    assert [e.before for e in entries] == [30, 20, 10]


async def test_change_notices_yields_subscribed_then_each_change(store: StateStore) -> None:
    stream = store.change_notices()
    assert isinstance(stream, AsyncGenerator)  # so it can be closed, ending the subscription
    try:
        assert await asyncio.wait_for(anext(stream), 5) == "subscribed"
        await store.set_flag("beta", True)
        await store.set_weight(10)
        assert await asyncio.wait_for(anext(stream), 5) == "flag:beta"
        assert await asyncio.wait_for(anext(stream), 5) == "weight"
    finally:
        await stream.aclose()


async def test_key_prefix_separates_deployments(store: StateStore) -> None:
    other = StateStore(store.redis, KeySpace("other:"), actor="test")
    await other.set_weight(90)
    await other.add_backend("staging", "http://127.0.0.1:9")
    assert (await store.read_snapshot()).weight == 30
    assert (await store.read_snapshot()).version == 0
    assert (await other.read_snapshot()).weight == 90
    assert await store.audit_log() == []


async def test_heartbeat_instances_and_forget(store: StateStore) -> None:
    await store.heartbeat("b-host:2:8080", {"pid": 2, "version": 3}, ttl_s=30)
    await store.heartbeat("a-host:1:8080", {"pid": 1, "version": 3}, ttl_s=30)
    await store.redis.set(store.keys.instance("junk"), "not json")  # ignored, not fatal
    found = await store.instances()
    assert [(i.id, dict(i.info)) for i in found] == [
        ("a-host:1:8080", {"pid": 1, "version": 3}),
        ("b-host:2:8080", {"pid": 2, "version": 3}),
    ]
    ttl = await store.redis.ttl(store.keys.instance("a-host:1:8080"))
    assert 0 < ttl <= 30

    await store.heartbeat("a-host:1:8080", {"pid": 1, "version": 4}, ttl_s=30)
    assert [dict(i.info)["version"] for i in await store.instances()] == [4, 3]

    await store.forget_instance("a-host:1:8080")
    assert [i.id for i in await store.instances()] == ["b-host:2:8080"]
    await store.forget_instance("never-was")  # forgetting twice is harmless
    # Heartbeats are not routing state.
    assert (await store.read_snapshot()).version == 0


@pytest.mark.parametrize(
    "op",
    [
        lambda s: s.read_snapshot(),
        lambda s: s.set_weight(50),
        lambda s: s.add_backend("production", "http://127.0.0.1:9001"),
        lambda s: s.audit_log(),
        lambda s: s.instances(),
        lambda s: s.ping(),
    ],
    ids=["read_snapshot", "set_weight", "add_backend", "audit_log", "instances", "ping"],
)
async def test_unreachable_redis_raises_state_unavailable(
    op: Callable[[StateStore], Awaitable[object]],
) -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    store = StateStore(client, actor="test")
    try:
        with pytest.raises(StateUnavailable) as info:
            await asyncio.wait_for(op(store), 10)
    finally:
        await client.aclose()
    assert not isinstance(info.value, RedisError)
    assert isinstance(info.value, ConnectionError)
    assert "Redis" in str(info.value)
    assert isinstance(info.value.__cause__, RedisConnectionError | OSError)
