"""state/monitoring.py against a real Redis: rule states, outboxes, notifier status."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from state import InvalidValue, KeySpace, MonitorStore, NotifierStatus, connect, monitored_hosts
from state.monitoring import OUTBOX_MAX


@pytest.fixture
async def mstore(redis_url: str) -> AsyncIterator[MonitorStore]:
    client = connect(redis_url)
    yield MonitorStore(client, KeySpace(), host="web-1", actor="monitor:web-1")
    await client.aclose()


async def test_states_and_notices_are_written_together(mstore: MonitorStore) -> None:
    await mstore.commit(
        {"cpu": {"phase": "firing"}, "mem": {"phase": "inactive"}},
        [{"kind": "firing", "n": 1}, {"kind": "repeat", "n": 2}],
        ["email", "webhook"],
        [("monitor:web-1:cpu", "pending", "firing")],
    )
    assert await mstore.rule_states() == {"cpu": {"phase": "firing"}, "mem": {"phase": "inactive"}}
    assert await mstore.queued("email") == 2 and await mstore.queued("webhook") == 2
    first = await mstore.next_notice("email")
    assert first is not None and first.notice["n"] == 1
    await mstore.delivered("email", first.raw)
    second = await mstore.next_notice("email")
    assert second is not None and second.notice["n"] == 2
    # Channels are independent: the webhook still has both.
    assert await mstore.queued("webhook") == 2
    entries = await mstore.redis.xrevrange(KeySpace().audit, count=5)
    assert [(f["what"], f["who"], f["after"]) for _, f in entries] == [
        ("monitor:web-1:cpu", "monitor:web-1", '"firing"')
    ]


async def test_identical_notices_are_removed_one_at_a_time(mstore: MonitorStore) -> None:
    await mstore.commit({}, [{"kind": "repeat"}, {"kind": "repeat"}], ["email"])
    queued = await mstore.next_notice("email")
    assert queued is not None
    await mstore.delivered("email", queued.raw)
    assert await mstore.queued("email") == 1


async def test_outbox_is_capped_keeping_the_newest(mstore: MonitorStore) -> None:
    await mstore.commit({}, [{"n": i} for i in range(OUTBOX_MAX + 20)], ["email"])
    assert await mstore.queued("email") == OUTBOX_MAX
    oldest = await mstore.next_notice("email")
    assert oldest is not None and oldest.notice["n"] == 20


async def test_unreadable_outbox_entries_are_skipped(mstore: MonitorStore) -> None:
    await mstore.redis.rpush(KeySpace().monitor_outbox("web-1", "email"), "not json", '{"kind": "firing"}')
    queued = await mstore.next_notice("email")
    assert queued is not None and queued.notice == {"kind": "firing"}
    assert await mstore.queued("email") == 1


async def test_notifier_status_round_trip(mstore: MonitorStore) -> None:
    status = NotifierStatus("email", "failing", 3, "SMTP down", 10.0, None, 14.0, 0)
    await mstore.set_notifier(status)
    await mstore.set_notifier(NotifierStatus("webhook"))
    assert await mstore.notifiers() == [status, NotifierStatus("webhook")]


async def test_hosts_with_rule_states_and_forgetting_rules(mstore: MonitorStore) -> None:
    other = MonitorStore(mstore.redis, KeySpace(), host="db.internal-2")
    await mstore.commit({"cpu": {"phase": "inactive"}, "old": {"phase": "firing"}}, [], [])
    await other.commit({"mem": {"phase": "inactive"}}, [], [])
    assert await monitored_hosts(mstore.redis) == ["db.internal-2", "web-1"]
    await mstore.forget_rules(["old"])
    assert set(await mstore.rule_states()) == {"cpu"}


@pytest.mark.parametrize("name", ["", "web 1", "a:b", "x*", "-lead", "é"])
async def test_host_names_that_would_break_keys_are_refused(redis_url: str, name: str) -> None:
    client = connect(redis_url)
    try:
        with pytest.raises(InvalidValue, match="host name"):
            MonitorStore(client, host=name)
    finally:
        await client.aclose()
