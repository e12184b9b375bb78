"""The controller against a real Redis: the lease, one judgment per step across
proxies, the weight on a FAIL, the alert, notices and the deploy request.

Windows come from a value source (the Protocol the stats reader meets), and the
clock is a value the test moves, so each step is judged when the test says."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from pytest_aiohttp import AiohttpServer

from proxy.analysis import Histogram, VersionWindow
from proxy.rollout import operate
from proxy.rollout.controller import RolloutController
from proxy.rollout.model import Plan, Rollout, Status
from proxy.rollout.notify import ChatWebhook, Courier
from state import Alert, DeployRecord, DeployStore, KeySpace, Snapshot, StateStore, connect
from state.rollouts import DeployRequests, RolloutStore
from tests.support.backends import Backend
from tests.support.wait import eventually


def window(requests: int, errors: int, latency_s: float = 0.02) -> VersionWindow:
    return VersionWindow(
        requests, (0, requests - errors, 0, 0, errors), (0, 0, 0), Histogram.of([latency_s] * requests)
    )


@dataclass
class Windows:
    production: VersionWindow
    staging: VersionWindow


class Source:
    """The stats both versions show, as the test sets them; and the windows asked for."""

    def __init__(self) -> None:
        self.now = 1e9
        self.staging = window(1000, 10)
        self.production = window(5000, 50)
        self.asked: list[tuple[float, float]] = []
        self.snapshot = Snapshot()

    async def read(self, start: float, end: float) -> Windows:
        self.asked.append((start, end))
        return Windows(self.production, self.staging)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url)
    yield client
    await client.aclose()


def controller(
    client: aioredis.Redis,
    source: Source,
    name: str,
    chat: ChatWebhook | None = None,
    on_deploy: Plan | None = None,
) -> RolloutController:
    keys = KeySpace()
    rollouts = RolloutStore(client, keys, actor=f"proxy:{name}")
    return RolloutController(
        rollouts,
        StateStore(client, keys, actor=f"proxy:{name}"),
        lambda: source.snapshot,
        source.read,
        courier=Courier(rollouts, chat, retry_s=0.01),
        instance_id=name,
        lease_s=0.3,
        clock=lambda: source.now,
        on_deploy=None if on_deploy is None else (DeployStore(client, keys), on_deploy),
    )


async def begin(c: RolloutController, plan: Plan, release: str = "abc123") -> Rollout:
    await c.store.add_backend("production", "http://127.0.0.1:9")
    await c.store.add_backend("staging", "http://127.0.0.1:10")
    return await operate.start(c.rollouts, c.store, plan, release)


async def test_each_passing_step_sets_its_weight_and_the_last_promotes(redis: aioredis.Redis) -> None:
    source = Source()
    c = controller(redis, source, "a")
    r = await begin(c, Plan(steps=(10, 50, 100), step_s=60))
    source.now = r.started_at
    assert (await c.store.read_snapshot()).weight == 10
    for expected in (50, 100):
        source.now += 61
        await c.tick()
        assert (await c.store.read_snapshot()).weight == expected
    assert c.current is not None and c.current.status is Status.DONE
    assert [j.outcome for j in c.current.history] == ["PASS"] * 2
    assert source.asked[0][0] == r.started_at  # each window starts where its step began


async def test_a_failing_canary_aborts_at_weight_zero_with_audit_and_a_notice(redis: aioredis.Redis) -> None:
    source = Source()
    c = controller(redis, source, "a")
    r = await begin(c, Plan(steps=(10, 100), step_s=5))
    source.staging = window(1000, 60)  # 6% against production's 1%
    source.now = r.started_at + 6
    await c.tick()
    # The first FAIL is judged again on a fresh window (the plan's failure_limit of 1)...
    assert c.current is not None and (c.current.status, c.current.failures) == (Status.RUNNING, 1)
    assert (await c.store.read_snapshot()).weight == 10
    assert not await c.rollouts.next_notice()
    source.now += 6
    await c.tick()
    # ...and the second aborts.
    assert c.current is not None and c.current.status is Status.ABORTED
    assert source.asked[-1][0] == r.started_at + 6  # the fresh window began at the first verdict
    assert (await c.store.read_snapshot()).weight == 0
    audit = [e for e in await c.store.audit_log(20) if e.what == "rollout"]
    assert audit[0].after["status"] == "aborted"  # type: ignore[index]
    assert "errors FAIL" in audit[0].after["verdict"]["explain"]  # type: ignore[index]
    found = await c.rollouts.next_notice()
    assert found is not None and found[1]["kind"] == "aborted" and found[1]["details"]


async def test_two_leaders_at_once_judge_a_step_only_once(redis: aioredis.Redis) -> None:
    source = Source()
    a, b = controller(redis, source, "a"), controller(redis, source, "b")
    r = await begin(a, Plan(steps=(10, 50, 100), step_s=5))
    source.now = r.started_at + 6
    # Both read the same record, then both try to write their verdict on it.
    assert await a.advance(r) is not None
    assert await b.advance(r) is None
    stored = Rollout.from_json(await a.rollouts.read() or {})
    assert [j.step for j in stored.history] == [0] and stored.step == 1


async def test_only_the_lease_holder_advances_and_the_next_takes_over(redis: aioredis.Redis) -> None:
    source = Source()
    a, b = controller(redis, source, "a"), controller(redis, source, "b")
    r = await begin(a, Plan(steps=(10, 50, 100), step_s=5))
    await a.tick()
    await b.tick()
    assert a.leading.is_set() and not b.leading.is_set()
    source.now = r.started_at + 6
    await b.tick()
    assert b.current is not None and b.current.step == 0  # b only watches
    await a.tick()
    assert a.current is not None and a.current.step == 1
    # a dies (ticks no more): its lease runs out and b carries on from the record.
    await eventually(lambda: _took_over(b), 5, "b to take the lease")
    source.now += 6
    await b.tick()
    stored = Rollout.from_json(await b.rollouts.read() or {})
    assert [j.step for j in stored.history] == [0, 1]
    assert (a.judged, b.judged) == (1, 1)


async def _took_over(c: RolloutController) -> bool:
    await c.tick()
    return c.leading.is_set()


async def test_an_unwritten_weight_is_written_by_the_next_leader(redis: aioredis.Redis) -> None:
    source = Source()
    c = controller(redis, source, "a")
    r = await begin(c, Plan(steps=(10, 100), step_s=5))
    await c.store.set_weight(3)  # as if the writer had died before its weight write
    record = await c.rollouts.read() or {}
    await c.rollouts.replace(int(record["revision"]), {**record, "applied": False}, audited=None)
    await c.tick()
    assert (await c.store.read_snapshot()).weight == 10
    assert r.target == 10


async def test_an_alert_pauses_the_rollout_and_clearing_it_does_not_resume(redis: aioredis.Redis) -> None:
    source = Source()
    c = controller(redis, source, "a")
    r = await begin(c, Plan(steps=(10, 100), step_s=5))
    source.snapshot = Snapshot(alert=await _alert(c))
    await c.tick()
    assert c.current is not None and c.current.status is Status.PAUSED
    source.snapshot = Snapshot()
    source.now = r.started_at + 100
    await c.tick()
    assert _status(c) is Status.PAUSED and c.current.history == ()


async def _alert(c: RolloutController) -> Alert | None:
    await c.store.set_alert("cpu 97%")
    return (await c.store.read_snapshot()).alert


async def test_a_finished_rollout_asks_the_provisioner_to_deploy_then_restores_the_weight(
    redis: object,
) -> None:
    source = Source()
    c = controller(redis, source, "a")
    await c.store.set_weight(0)
    r = await begin(c, Plan(steps=(50, 100), step_s=5, promote="deploy"), release="feedbeef")
    source.now = r.started_at + 6
    await c.tick()
    assert c.current is not None and c.current.status is Status.PROMOTING
    worker = DeployRequests(c.rollouts.redis, KeySpace(), actor="provisioner:test")
    await worker.ensure_group()
    [request] = await worker.claim("w1", block_ms=100)
    assert (request.sha, request.rollout) == ("feedbeef", r.id)
    await worker.done(request, ok=True, detail="deployed to 2 servers")
    await c.tick()
    assert _status(c) is Status.DONE
    assert (await c.store.read_snapshot()).weight == 0


async def test_notices_reach_the_chat_webhook_and_a_failing_webhook_is_retried(
    redis: aioredis.Redis, aiohttp_server: AiohttpServer
) -> None:
    hook = Backend("chat", fail_first=2, keep_bodies=True)
    hook.served_by(await aiohttp_server(hook.app(), access_log=None))
    source = Source()
    c = controller(redis, source, "a", ChatWebhook(hook.url + "/hook", timeout_s=2))
    r = await begin(c, Plan(steps=(10, 100), step_s=5))
    source.staging = window(1000, 500)
    source.now = r.started_at + 6
    await c.tick()  # the rollout aborts whatever the webhook does
    assert c.current is not None and c.current.status is Status.ABORTED
    c.start()
    try:
        await eventually(lambda: c.courier.delivered == 1, 10, "the notice to be posted")
    finally:
        await c.stop()
    assert hook.hits == 3
    payload = json.loads(hook.bodies[-1])
    assert "aborted" in payload["text"] and "errors FAIL" in payload["attachments"][0]["text"]
    assert await c.rollouts.next_notice() is None


def _status(c: RolloutController) -> Status | None:
    return None if c.current is None else c.current.status


async def test_with_rollout_on_deploy_a_staging_deploy_starts_a_rollout_of_its_sha(
    redis: aioredis.Redis,
) -> None:
    source = Source()
    c = controller(redis, source, "a", on_deploy=Plan(steps=(10, 100), step_s=5, promote="deploy"))
    await c.store.add_backend("production", "http://127.0.0.1:9")
    await c.store.add_backend("staging", "http://127.0.0.1:10")
    await c.tick()
    assert _status(c) is None  # no deploy yet: nothing to roll out
    sha = "c0ffee" * 6 + "c0ff"
    deploys = DeployStore(redis, KeySpace(), actor="provisioner:test")
    await deploys.record(
        DeployRecord("staging", "deploy", sha, "succeeded", "provisioner:test", source.now - 1)
    )
    await c.tick()
    assert c.current is not None and c.current.release == sha and c.current.plan.promote == "deploy"
    assert (await c.store.read_snapshot()).weight == 10
    first = c.current.id
    await c.tick()
    assert c.current.id == first  # the same deploy starts one rollout
