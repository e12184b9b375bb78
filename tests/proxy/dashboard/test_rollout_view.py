"""The rollout section in a real browser, on the real rollout API (proxy/rollout/admin.py):
a record of known values on an in-process admin app, for the page's formatting; a real
`proxy serve` with a rollout started by the CLI, for the whole path. Shown while
`GET /rollout` holds a record, hidden on null; the buttons send the bearer token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpServer

from proxy.admin import build_admin
from proxy.app import ProxyApp
from proxy.dashboard import mount_dashboard
from proxy.rollout.admin import mount_rollout
from proxy.rollout.apply import record_of
from proxy.rollout.model import Judged, Plan, Rollout
from proxy.snapshots import SnapshotFollower
from proxy.stats import Stats
from state import KeySpace, StateStore, VersionStatsStore, connect
from state.rollouts import RolloutStore
from tests.support.backends import Backend
from tests.support.browser import open_page
from tests.support.dashboard import TOKEN, Dashboard
from tests.support.load import Load
from tests.support.proxy import ProxyProcess, run_cli
from tests.support.wait import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

METRIC = {
    "metric": "errors",
    "outcome": "PASS",
    "reason": "not significantly above the limit",
    "canary": 0.0131,
    "baseline": 0.004,
    "limit": 0.014,
    "canary_n": 1200,
    "baseline_n": 9800,
    "canary_interval": [0.008, 0.021],
    "baseline_interval": [0.003, 0.005],
    "test": "Fisher's exact, one-sided, H0: odds ratio <= 1.5",
    "statistic": 3.3,
    "p_value": 0.000412,
}
# The real controller's settings, fast: 1 s buckets, a lease of 1 s, a look every 50 ms.
FAST = {"PROXY_STATS_BUCKET_S": "1", "PROXY_ROLLOUT_LEASE_S": "1", "PROXY_ROLLOUT_TICK_S": "0.05"}


def known_rollout() -> Rollout:
    now = time.time()
    judged = Judged(
        1,
        10,
        "PASS",
        now - 5,
        now - 65,
        now - 5,
        "PASS: errors PASS",
        {"outcome": "PASS", "metrics": [METRIC]},
    )
    return Rollout(
        "r1",
        Plan(step_s=60.0),
        "cli:ops@host",
        "9be41d07aa52c3f0",
        0,
        now - 130,
        step=2,
        step_started=now - 5,
        due_at=now + 55,
        target=25,
        applied=True,
        history=(judged,),
    )


@pytest.fixture
async def admin_with_rollouts(
    redis_url: str, aiohttp_server: AiohttpServer
) -> AsyncIterator[tuple[str, RolloutStore]]:
    keys = KeySpace()
    clients = connect(redis_url), connect(redis_url)
    clients[1].connection_pool.connection_kwargs["socket_timeout"] = None
    store = StateStore(clients[0], keys)
    await store.add_backend("staging", "http://127.0.0.1:9")  # the pause writes the weight back
    snapshots = SnapshotFollower(store, StateStore(clients[1], keys), resync_interval_s=1.0)
    await snapshots.start()
    app = build_admin(store, snapshots, Stats(), CollectorRegistry(), TOKEN)
    rollouts = RolloutStore(clients[0], keys)
    mount_dashboard(app, {}, VersionStatsStore(clients[0], keys))
    mount_rollout(app, rollouts)
    server = await aiohttp_server(app, access_log=None)
    yield f"http://127.0.0.1:{server.port}/", rollouts
    await server.close()
    await snapshots.stop()
    for client in clients:
        await client.aclose()


async def status_of(rollouts: RolloutStore) -> str | None:
    record = await rollouts.read()
    return None if record is None else str(record["status"])


async def cells(page: Page, selector: str) -> dict[str, str]:
    """One verdict row's cells by their class (canary, baseline, limit, p-value)."""
    row = page.locator(selector).first
    return {
        c: (await row.locator(f"td.{c}").text_content() or "")
        for c in ("canary", "baseline", "limit", "p-value")
    }


async def pause_refused_then_paused(page: Page, rollouts: RolloutStore) -> None:
    """Pause without the token: refused, said on the page, nothing written; with it: paused in Redis."""
    await page.click("[data-rollout=pause]")
    await page.wait_for_selector("#message.refused")
    assert "Refused (401)" in (await page.text_content("#message") or "")
    assert await status_of(rollouts) == "running"
    await page.fill("#token", TOKEN)
    await page.click("#login button[type=submit]")
    await page.click("[data-rollout=pause]")
    await eventually(
        lambda: _is(status_of(rollouts), "paused"), 10, "the rollout paused in Redis", interval_s=0.05
    )
    await page.wait_for_selector("#rollout-status:text('paused')")
    assert await page.is_enabled("[data-rollout=resume]") and await page.is_disabled("[data-rollout=pause]")


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def test_a_known_record_shows_its_steps_and_verdict_values_and_null_hides_it(
    admin_with_rollouts: tuple[str, RolloutStore], browser: Browser
) -> None:
    url, rollouts = admin_with_rollouts
    await rollouts.create(record_of(known_rollout()), replaceable=lambda _: True, audited=None)
    watched = await open_page(browser, url)
    page = watched.page
    await page.wait_for_selector("#rollout-section:not(.hidden)")
    assert await page.text_content("#rollout-steps li.current") == "25%"
    assert await page.locator("#rollout-steps li.done").count() == 2
    about = await page.text_content("#rollout-about") or ""
    assert "r1 of 9be41d07aa52," in about and "25% to staging" in about, about
    assert await page.text_content(".verdict.pass strong") == "step 2 at 10%: PASS"
    assert await cells(page, ".verdict tr[data-metric=errors]") == {
        "canary": "1.31% of 1200",
        "baseline": "0.40% of 9800",
        "limit": "1.40%",
        "p-value": "0.000412",
    }
    assert await page.is_disabled("[data-rollout=resume]")
    await pause_refused_then_paused(page, rollouts)
    assert await page.text_content("#rollout-reason") == "paused by hand"
    await rollouts.redis.delete(rollouts.keys.rollout)
    await page.wait_for_selector("#rollout-section.hidden", state="attached", timeout=15_000)
    assert [e for e in watched.errors if "401" not in e] == [], watched.errors


async def test_a_rollout_started_by_the_cli_shows_its_verdict_and_pauses_from_the_page(
    store: StateStore,
    backends: dict[str, Backend],
    proxy_process: Callable[..., ProxyProcess],
    redis_url: str,
    browser: Browser,
) -> None:
    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    await store.set_weight(0)
    for b in backends.values():
        # About 20 ms an answer, as a real service: at 1-2 ms, a loaded machine's scheduling
        # noise alone exceeds the judge's x1.25 allowance at p50 and fails an identical canary.
        b.delay_s = 0.02
    proc = proxy_process(env={"PROXY_ADMIN_TOKEN": TOKEN, **FAST})
    rollouts = RolloutStore(store.redis, store.keys)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        dash = Dashboard(proc, store, backends, session)
        await eventually(lambda: _is(dash.served_by(), "production"), 10, "the proxy to route")
        watched = await open_page(browser, dash.url)
        await watched.page.wait_for_selector("#conn:text('live')")
        assert await watched.page.is_hidden("#rollout-section")
        # About 60 req/s per version at 50%: the judge's 200 of each within a few 2 s waits.
        # Stopped after that verdict, so the 75% step never has enough and the rollout
        # keeps running (INCONCLUSIVE, 1000 waits) for the page to pause it.
        load = Load(proc.port, concurrency=4, pause_s=0.01, max_requests=8000)
        load.start()
        try:
            started = await asyncio.to_thread(
                run_cli,
                "rollout",
                "start",
                "--steps",
                "50,75,100",
                "--step-s",
                "2",
                "--max-inconclusive",
                "1000",
                "--redis-url",
                redis_url,
            )
            assert started.returncode == 0, started.stderr
            await eventually(lambda: _judged(rollouts), 40, "the first step passed", interval_s=0.05)
        finally:
            await load.stop()
        record = await rollouts.read()
        assert record is not None and record["status"] == "running", record
        [passed] = [j for j in record["history"] if j["outcome"] == "PASS"]
        page = watched.page
        await page.wait_for_selector(".verdict.pass", timeout=15_000)
        assert await page.text_content("#rollout-steps li.done") == "50%"
        assert await page.text_content("#rollout-steps li.current") == "75%"
        errors = next(m for m in passed["verdict"]["metrics"] if m["metric"] == "errors")
        shown = await cells(page, ".verdict.pass tr[data-metric=errors]")
        assert shown["canary"] == f"0.00% of {errors['canary_n']}", shown
        assert shown["baseline"] == f"0.00% of {errors['baseline_n']}", shown
        assert float(shown["p-value"]) == pytest.approx(errors["p_value"], rel=0.01), shown
        assert await page.locator(".verdict.pass tr").count() == 1 + len(passed["verdict"]["metrics"])
        await pause_refused_then_paused(page, rollouts)
    assert [e for e in watched.errors if "401" not in e] == [], watched.errors


async def _judged(rollouts: RolloutStore) -> bool:
    record = await rollouts.read()
    assert record is not None and record["status"] == "running", record
    return any(j["outcome"] == "PASS" for j in record["history"])


async def test_without_a_rollout_the_section_stays_hidden(browser: Browser, proxy: ProxyApp) -> None:
    watched = await open_page(browser, f"http://127.0.0.1:{proxy.admin_port}/")

    async def rendered_thrice() -> bool:
        return bool(await watched.page.evaluate("() => (window.__switchyard || {}).renders >= 3"))

    await eventually(rendered_thrice, 15, "three renders (two seconds of state events)")
    assert [u for u in watched.requests if u.endswith("/rollout")], watched.requests
    assert await watched.page.is_hidden("#rollout-section")
    assert watched.errors == [], watched.errors
