"""Fixtures of the dashboard's tests: a proxy process with an admin token in front of two
real backends, and a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from playwright.async_api import Browser

from state import StateStore
from tests.support.backends import Backend
from tests.support.browser import chromium
from tests.support.dashboard import BUCKET_S, TOKEN, Dashboard
from tests.support.proxy import ProxyProcess
from tests.support.wait import eventually


@pytest.fixture
async def dashboard(
    store: StateStore,
    backends: dict[str, Backend],
    proxy_process: Callable[..., ProxyProcess],
) -> AsyncIterator[Dashboard]:
    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    await store.set_weight(100)
    # 2 s buckets: the chart's points come five times as fast as in production.
    proc = proxy_process(env={"PROXY_ADMIN_TOKEN": TOKEN, "PROXY_STATS_BUCKET_S": str(BUCKET_S)})
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        dash = Dashboard(proc, store, backends, session)

        async def on_staging() -> bool:
            return await dash.served_by() == "staging"

        await eventually(on_staging, 10, "the proxy to route to staging")
        yield dash


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b
