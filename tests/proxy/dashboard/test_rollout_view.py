"""The rollout section in a real browser, against an admin app that serves `GET /rollout`
and `POST /rollout/{action}` as the rollout API does (that API lands on its own branch:
here a stand-in with its record's shape). Shown on 200, hidden on 404; every verdict
with its values; the buttons send the bearer token."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpServer

from proxy.admin import build_admin
from proxy.app import ProxyApp
from proxy.auth import authorize, bearer
from proxy.dashboard import mount_dashboard
from proxy.snapshots import SnapshotFollower
from proxy.stats import Stats
from state import KeySpace, StateStore, VersionStatsStore, connect
from tests.support.browser import open_page
from tests.support.dashboard import TOKEN
from tests.support.wait import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

METRIC = {
    "metric": "errors",
    "outcome": "FAIL",
    "reason": "canary errors above the limit",
    "canary": 0.031,
    "baseline": 0.004,
    "limit": 0.014,
    "canary_n": 1200,
    "baseline_n": 9800,
    "p_value": 0.00021,
}
ROLLOUT: dict[str, Any] = {
    "id": "r1",
    "plan": {"steps": [5, 10, 25, 50, 100], "step_s": 60.0, "max_inconclusive": 3, "promote": "hold"},
    "status": "running",
    "step": 2,
    "reason": "",
    "release": "9be41d07aa52",
    "history": [
        {
            "step": 1,
            "weight": 10,
            "outcome": "FAIL",
            "at": 1.0,
            "start": 0.0,
            "end": 1.0,
            "explain": "errors FAIL",
            "verdict": {"outcome": "FAIL", "metrics": [METRIC]},
        },
    ],
}


@pytest.fixture
async def admin_with_rollouts(
    redis_url: str, aiohttp_server: AiohttpServer
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    keys = KeySpace()
    clients = connect(redis_url), connect(redis_url)
    clients[1].connection_pool.connection_kwargs["socket_timeout"] = None
    store = StateStore(clients[0], keys)
    snapshots = SnapshotFollower(store, StateStore(clients[1], keys), resync_interval_s=1.0)
    await snapshots.start()
    app = build_admin(store, snapshots, Stats(), CollectorRegistry(), TOKEN)
    record: dict[str, Any] = {"rollout": None}

    async def get_rollout(request: web.Request) -> web.Response:
        if record["rollout"] is None:
            return web.json_response({"error": "no_rollout", "message": "no rollout"}, status=404)
        return web.json_response(record["rollout"])

    async def act(request: web.Request) -> web.Response:
        authorize(TOKEN, bearer(request.headers.get("Authorization")), request.remote)
        record["rollout"]["status"] = {"pause": "paused", "resume": "running", "abort": "aborted"}.get(
            request.match_info["action"], "promoting"
        )
        return web.json_response(record["rollout"])

    app.router.add_get("/rollout", get_rollout)
    app.router.add_post("/rollout/{action}", act)
    mount_dashboard(app, {}, VersionStatsStore(clients[0], keys))
    server = await aiohttp_server(app, access_log=None)
    yield f"http://127.0.0.1:{server.port}/", record
    await server.close()
    await snapshots.stop()
    for client in clients:
        await client.aclose()


async def test_the_rollout_shows_its_steps_and_verdicts_and_pause_needs_the_token(
    admin_with_rollouts: tuple[str, dict[str, Any]], browser: Browser
) -> None:
    url, record = admin_with_rollouts
    record["rollout"] = copy.deepcopy(ROLLOUT)
    watched = await open_page(browser, url)
    page = watched.page
    await page.wait_for_selector("#rollout-section:not(.hidden)")
    assert await page.text_content("#rollout-steps li.current") == "25%"
    assert await page.locator("#rollout-steps li.done").count() == 2
    row = await page.text_content("#rollout-verdicts tbody tr") or ""
    for shown in (
        "errors",
        "FAIL",
        "3.10% of 1200",
        "0.40% of 9800",
        "1.40%",
        "0.000210",
        "canary errors above the limit",
    ):
        assert shown in row, (shown, row)
    await page.click("[data-rollout=pause]")
    await page.wait_for_selector("#message.refused")
    assert record["rollout"]["status"] == "running"
    await page.fill("#token", TOKEN)
    await page.click("#login button[type=submit]")
    await page.click("[data-rollout=pause]")
    await eventually(lambda: record["rollout"]["status"] == "paused", 10, "the rollout paused")
    await page.wait_for_selector("#rollout-status:text('paused')")
    record["rollout"] = None
    await page.wait_for_selector("#rollout-section.hidden", state="attached", timeout=15_000)
    assert [e for e in watched.errors if "401" not in e and "404" not in e] == [], watched.errors


async def test_without_a_rollout_api_the_page_asks_for_none(browser: Browser, proxy: ProxyApp) -> None:
    watched = await open_page(browser, f"http://127.0.0.1:{proxy.admin_port}/")

    async def rendered_thrice() -> bool:
        return bool(await watched.page.evaluate("() => (window.__switchyard || {}).renders >= 3"))

    await eventually(rendered_thrice, 15, "three renders (two seconds of state events)")
    assert await watched.page.is_hidden("#rollout-section")
    assert any(u.endswith("/dashboard/events") for u in watched.requests), watched.requests
    assert not [u for u in watched.requests if u.endswith("/rollout")], watched.requests
    assert watched.errors == [], watched.errors
