"""Rollouts end to end: real `proxy serve` processes, real backends, a real Redis, the
CLI as an operator runs it. Steps are short (2-3 s) and load is bounded in count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from proxy.versionstats import read_window
from state import AuditEntry, KeySpace, StateStore, VersionStatsStore, connect
from tests.support.backends import Backend
from tests.support.load import Load
from tests.support.proxy import ProxyProcess, run_cli
from tests.support.wait import eventually

ENV = {"PROXY_STATS_BUCKET_S": "1", "PROXY_ROLLOUT_LEASE_S": "1", "PROXY_ROLLOUT_TICK_S": "0.05"}
MAX_REQUESTS = 40_000
# Both versions answer in about 20 ms, as a real service might. With answers of 1-2 ms
# from backends that share the test's loop, a millisecond of scheduling noise on a
# loaded machine is already more than the judge's x1.25 allowance at p50.
SERVICE_S = 0.02


@dataclass
class Rig:
    redis_url: str
    store: StateStore
    production: Backend
    staging: Backend
    start_proxy: Callable[..., ProxyProcess]
    proxies: list[ProxyProcess] = field(default_factory=list)
    http: aiohttp.ClientSession | None = None

    async def cli(self, *args: str) -> str:
        done = await asyncio.to_thread(run_cli, *args, "--redis-url", self.redis_url)
        assert done.returncode == 0, done.stderr
        return done.stdout

    async def rollout(self, proxy: ProxyProcess | None = None) -> dict[str, object]:
        assert self.http is not None
        proxy = proxy or self.proxies[0]
        async with self.http.get(f"http://127.0.0.1:{proxy.admin_port}/rollout") as reply:
            body = await reply.json()
        return body  # type: ignore[no-any-return]

    async def record(self) -> dict[str, object]:
        found = (await self.rollout())["rollout"]
        assert isinstance(found, dict)
        return found

    async def status_is(self, *statuses: str) -> bool:
        record = (await self.rollout())["rollout"]
        return isinstance(record, dict) and record["status"] in statuses

    async def weight_at(self, proxy: ProxyProcess) -> int:
        assert self.http is not None
        async with self.http.get(f"http://127.0.0.1:{proxy.admin_port}/status") as reply:
            return int((await reply.json())["proxy"]["snapshot"]["weight"])


@pytest.fixture
async def rig(
    redis_url: str, aiohttp_server: AiohttpServer, proxy_process: Callable[..., ProxyProcess]
) -> AsyncIterator[Rig]:
    client = connect(redis_url)
    store = StateStore(client, KeySpace(), actor="test")
    production, staging = Backend("production", delay_s=SERVICE_S), Backend("staging", delay_s=SERVICE_S)
    for b in (production, staging):
        b.served_by(await aiohttp_server(b.app(), access_log=None))
    await store.add_backend("production", production.url)
    await store.add_backend("staging", staging.url)
    await store.set_weight(0)
    rig = Rig(redis_url, store, production, staging, proxy_process)
    async with aiohttp.ClientSession() as http:
        rig.http = http
        yield rig
    await client.aclose()


def start_proxies(rig: Rig, n: int = 1) -> list[ProxyProcess]:
    rig.proxies = [rig.start_proxy(env=ENV) for _ in range(n)]
    return rig.proxies


def history(record: dict[str, object]) -> list[dict[str, object]]:
    found = record["history"]
    assert isinstance(found, list)
    return found


def outcome_of(judged: dict[str, object], metric: str) -> str:
    verdict = judged["verdict"]
    assert isinstance(verdict, dict)
    return str(next(m["outcome"] for m in verdict["metrics"] if m["metric"] == metric))


@pytest.mark.timeout(120)
async def test_five_points_more_5xx_abort_at_the_first_step_at_every_proxy_fast(rig: Rig) -> None:
    rig.staging.fail_every = 20
    a, b = start_proxies(rig, 2)
    loads = [Load(p.port, concurrency=8, max_requests=MAX_REQUESTS // 2) for p in (a, b)]
    for load in loads:
        load.start()
    try:
        # --failure-limit 0: abort on the first FAIL, as fast as a verdict can.
        await rig.cli("rollout", "start", "--steps", "25,50,100", "--step-s", "3", "--failure-limit", "0")
        await eventually(
            lambda: rig.status_is("aborted", "held", "done"), 40, "the rollout to end", interval_s=0.05
        )
        for p in (a, b):
            await eventually(lambda p=p: _weight_is(rig, p, 0), 5, "weight 0 at every proxy")  # type: ignore[misc]
    finally:
        for load in loads:
            await load.stop()
    record = await rig.record()
    # Judged at the first step only: FAIL, after as many INCONCLUSIVE waits as a busy
    # machine's traffic needed to reach the minimum sample.
    *waits, judged = history(record)
    assert [j["step"] for j in history(record)] == [0] * (len(waits) + 1)
    assert {j["outcome"] for j in waits} <= {"INCONCLUSIVE"} and judged["outcome"] == "FAIL"
    assert outcome_of(judged, "errors") == "FAIL"
    # Each proxy logs when it swaps in a new routing state: after the verdict, the
    # first is the weight of 0 (nothing else changed the state meanwhile).
    verdict_at = float(judged["at"])  # type: ignore[arg-type]
    applied_at = [first_change_after(p, verdict_at) for p in (a, b)]
    lag_s = max(applied_at) - verdict_at
    first_s = max(applied_at) - rig.staging.first_hit_at
    print(f"verdict to weight 0 at 2 proxies: {lag_s * 1000:.0f} ms; from the first request {first_s:.2f} s")
    # 100 ms is the aim (README: measured); a loaded shared machine gets this much room.
    assert lag_s < 0.25
    # Production's error rate did not move: every production answer was a 2xx.
    stats = VersionStatsStore(rig.store.redis, KeySpace(), bucket_s=1)
    window = await read_window(stats, float(record["started_at"]), time.time() + 1)  # type: ignore[arg-type]
    assert window.production.requests > 500 and window.production.errors == 0


def first_change_after(proxy: ProxyProcess, after: float) -> float:
    """When `proxy` first swapped in a new routing state after `after`, by its own log."""
    for line in proxy.output().splitlines():
        if "routing state changed" in line:
            stamp, _, millis = line[:23].partition(",")
            at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
            if at >= after - 0.001:  # the log's clock has milliseconds only
                return at
    raise AssertionError(f"no state change after {after} in the proxy's log:\n{proxy.output()}")


@pytest.mark.timeout(120)
async def test_a_staging_backend_100_ms_slower_fails_on_latency(rig: Rig) -> None:
    rig.staging.delay_s = SERVICE_S + 0.1
    [a] = start_proxies(rig)
    load = Load(a.port, concurrency=48, max_requests=MAX_REQUESTS)
    load.start()
    try:
        await rig.cli("rollout", "start", "--steps", "50,100", "--step-s", "3")
        await eventually(lambda: rig.status_is("aborted"), 30, "the rollout to abort")
    finally:
        await load.stop()
    # Two FAILs (the default --failure-limit 1 judged a fresh window after the first),
    # both on latency and not on errors, at the first step.
    judged = [j for j in history(await rig.record()) if j["outcome"] != "INCONCLUSIVE"]
    assert [(j["outcome"], j["step"]) for j in judged] == [("FAIL", 0)] * 2
    assert {outcome_of(j, "latency_p50") for j in judged} == {"FAIL"}
    assert {outcome_of(j, "errors") for j in judged} == {"PASS"}
    assert judged[1]["start"] == judged[0]["at"]  # a fresh window, not the first one grown
    await eventually(lambda: _weight_is(rig, a, 0), 5, "the proxy to route nothing to staging")


@pytest.mark.timeout(120)
async def test_an_identical_canary_is_promoted_to_100(rig: Rig) -> None:
    [a] = start_proxies(rig)
    load = Load(a.port, concurrency=32, max_requests=MAX_REQUESTS)
    load.start()
    try:
        await rig.cli("rollout", "start", "--steps", "25,100", "--step-s", "3")
        await eventually(lambda: rig.status_is("done", "aborted", "held"), 40, "the rollout to end")
    finally:
        await load.stop()
    record = await rig.record()
    print(*[j["explain"] for j in history(record)], sep="\n")
    assert record["status"] == "done", record["reason"]
    # One step judged (100% is the promotion), after any waits for enough traffic. A
    # shared machine can stall the canary's backend for a window's p99 (CI saw 113 ms
    # against 28): the failure limit of 1 rides out one such window, and no more.
    judged = [j["outcome"] for j in history(record) if j["outcome"] != "INCONCLUSIVE"]
    assert judged in (["PASS"], ["FAIL", "PASS"]), judged
    await eventually(lambda: _weight_is(rig, a, 100), 5, "the proxy to route all traffic to staging")
    status = await rig.cli("rollout", "status")
    assert "done" in status and "deploy" in status


@pytest.mark.timeout(120)
async def test_at_one_request_a_second_the_rollout_holds_instead_of_passing(rig: Rig) -> None:
    [a] = start_proxies(rig)
    load = Load(a.port, concurrency=1, pause_s=1.0, max_requests=100)
    load.start()
    try:
        await rig.cli("rollout", "start", "--steps", "50,100", "--step-s", "2", "--max-inconclusive", "1")
        await eventually(lambda: rig.status_is("held", "done", "aborted"), 30, "the rollout to hold")
    finally:
        await load.stop()
    record = await rig.record()
    assert record["status"] == "held" and "not enough traffic" in str(record["reason"])
    assert [j["outcome"] for j in history(record)] == ["INCONCLUSIVE", "INCONCLUSIVE"]
    await eventually(lambda: _weight_is(rig, a, 50), 5, "the proxy to keep the held step's weight")


@pytest.mark.timeout(150)
async def test_the_leader_killed_mid_step_is_taken_over_and_no_step_runs_twice(rig: Rig) -> None:
    a, b = start_proxies(rig, 2)
    await eventually(lambda: _leader(rig), 10, "a proxy to lead")
    leader_id = str((await rig.rollout())["leader"])
    leader, other = (a, b) if f":{a.pid}:" in leader_id else (b, a)
    load = Load(other.port, concurrency=32, max_requests=MAX_REQUESTS)
    load.start()
    try:
        await rig.cli("rollout", "start", "--steps", "25,50,100", "--step-s", "3")
        await eventually(lambda: _judged(rig, other, 1), 30, "the first step to be judged")
        # In the middle of the second step: SIGKILL, so the leader releases nothing.
        assert leader.proc is not None
        leader.proc.kill()
        await asyncio.to_thread(leader.proc.wait, 5)  # the backends share this loop: never block it
        await eventually(lambda: _status(rig, other, "done", "aborted", "held"), 60, "the rollout to end")
    finally:
        await load.stop()
    record = (await rig.rollout(other))["rollout"]
    assert isinstance(record, dict)
    print(*[j["explain"] for j in history(record)], sep="\n")
    assert record["status"] == "done", record["reason"]
    assert [j["step"] for j in history(record) if j["outcome"] == "PASS"] == [0, 1]
    # Each verdict was written once: the audit log holds exactly the record's verdicts.
    judged = judgments(await rig.store.audit_log(200))
    assert [step for step, _who in reversed(judged)] == [j["step"] for j in history(record)]
    assert str(other.pid) in judged[0][1]  # the newest: judged after the takeover


def judgments(entries: list[AuditEntry]) -> list[tuple[int, str]]:
    """(step, who) of every audited write that added a verdict, newest first."""
    found = []
    for e in entries:
        after = e.after if isinstance(e.after, dict) else {}
        before = e.before if isinstance(e.before, dict) else {}
        if e.what == "rollout" and after.get("judged", 0) != before.get("judged", 0):
            found.append((int(after["verdict"]["step"]), e.who))
    return found


async def _leader(rig: Rig) -> bool:
    return bool((await rig.rollout())["leader"])


async def _judged(rig: Rig, proxy: ProxyProcess, n: int) -> bool:
    record = (await rig.rollout(proxy))["rollout"]
    return isinstance(record, dict) and len(record["history"]) >= n


async def _status(rig: Rig, proxy: ProxyProcess, *statuses: str) -> bool:
    record = (await rig.rollout(proxy))["rollout"]
    return isinstance(record, dict) and record["status"] in statuses


async def _weight_is(rig: Rig, proxy: ProxyProcess, weight: int) -> bool:
    return await rig.weight_at(proxy) == weight
