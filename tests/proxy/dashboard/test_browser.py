"""The dashboard in a real browser (Debian's chromium, headless) against a real proxy
process, real Redis and real backends: it loads cleanly, its buttons steer the proxy,
its charts grow with traffic, and a write without the token is refused on the page."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable

import pytest
from playwright.async_api import Browser, Page

from state.flagstore import FlagStore
from tests.support.browser import open_page, screenshot_path
from tests.support.dashboard import TOKEN, Dashboard, show_some_state
from tests.support.load import Load
from tests.support.proxy import run_cli
from tests.support.wait import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
log = logging.getLogger("tests.dashboard")
RecordProperty = Callable[[str, object], None]

POINTS_ABOVE = "(n) => Number(document.querySelector('#chart-staging').getAttribute('data-points')) > n"


async def live(page: Page) -> None:
    await until(
        page, "() => window.__switchyard && window.__switchyard.renders > 0", None, 15, "a first render"
    )


async def until(page: Page, function: str, arg: object, timeout_s: float, what: str) -> None:
    """Poll a JS function from here: Playwright's wait_for_function polls with eval inside
    the page, which the page's CSP rightly forbids."""

    async def holds() -> bool:
        return bool(await page.evaluate(function, arg))

    await eventually(holds, timeout_s, what, interval_s=0.01)


async def log_in(page: Page, token: str = TOKEN) -> None:
    await page.fill("#token", token)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#who:not(.hidden)")


async def chart_points(page: Page, version: str) -> int:
    return int(await page.get_attribute(f"#chart-{version}", "data-points") or 0)


async def test_the_page_loads_with_no_console_error_and_a_strict_policy(
    dashboard: Dashboard, browser: Browser
) -> None:
    await show_some_state(dashboard.store, dashboard.backends)
    watched = await open_page(browser, dashboard.url)
    await live(watched.page)
    async with dashboard.session.get(dashboard.url) as r:
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
    page = watched.page
    await page.wait_for_selector("#servers td:text('app-7f3k')")
    await page.wait_for_selector("#hosts .chip:text('cpu: ok 23.5%')")
    assert await page.text_content("#version-production .sha") == "4f2a9c1e7b3d"
    assert await page.text_content("#weight-staging") == "100%"
    assert watched.errors == [], watched.errors


async def test_a_flag_toggle_changes_redis_and_the_running_proxy_obeys(
    dashboard: Dashboard, browser: Browser
) -> None:
    watched = await open_page(browser, dashboard.url)
    page = watched.page
    await live(page)
    await log_in(page)
    assert await dashboard.served_by("/set") == "staging"
    await page.click("button[data-flag=disableSET]")

    async def flag_on() -> bool:
        return (await dashboard.store.read_snapshot()).flags.get("disableSET") is True

    await eventually(flag_on, 10, "disableSET on in Redis")
    await eventually(lambda: _answers(dashboard, "/set", "status 403"), 10, "the proxy to block /set")
    await page.wait_for_selector("#flag-disableSET button:text('Turn off')")
    await page.click("button[data-flag=disableSET]")
    await eventually(lambda: _answers(dashboard, "/set", "staging"), 10, "the proxy to serve /set again")
    assert watched.errors == [], watched.errors


async def _answers(dashboard: Dashboard, path: str, expected: str) -> bool:
    return await dashboard.served_by(path) == expected


async def test_the_kill_switch_button_stops_staging_traffic(dashboard: Dashboard, browser: Browser) -> None:
    watched = await open_page(browser, dashboard.url)
    page = watched.page
    await live(page)
    await log_in(page)
    await page.fill("#kill-reason", "p99 doubled on the canary")
    await page.click("#kill-button")
    await eventually(lambda: _answers(dashboard, "/", "production"), 10, "staging traffic to stop")
    alert = (await dashboard.store.read_snapshot()).alert
    assert alert is not None and alert.reason == "p99 doubled on the canary"
    assert not {await dashboard.served_by() for _ in range(20)} - {"production"}
    await page.wait_for_selector("#kill-pill:text('ON')")
    assert "p99 doubled on the canary" in (await page.text_content("#kill-state") or "")
    await page.click("#kill-clear")
    await eventually(lambda: _answers(dashboard, "/", "staging"), 10, "staging traffic to come back")
    assert watched.errors == [], watched.errors


async def test_a_write_without_the_token_is_refused_and_the_page_says_so(
    dashboard: Dashboard, browser: Browser
) -> None:
    watched = await open_page(browser, dashboard.url)
    page = watched.page
    await live(page)
    await page.click("#kill-button")
    await page.wait_for_selector("#message.refused")
    message = await page.text_content("#message") or ""
    assert message.startswith("Refused (401)") and "token" in message, message
    assert (await dashboard.store.read_snapshot()).alert is None
    await page.click("button[data-flag=disableSET]")
    await page.wait_for_selector("#message.refused")
    assert (await dashboard.store.read_snapshot()).flags.get("disableSET") is not True
    await log_in(page, "not-the-token")
    await page.click("#kill-button")
    mismatch = "() => document.querySelector('#message').textContent.includes('does not match')"
    await until(page, mismatch, None, 10, "the page to say the token does not match")
    assert (await dashboard.store.read_snapshot()).alert is None
    # The browser logs the refused requests themselves; nothing else may be an error.
    assert [e for e in watched.errors if "401" not in e] == [], watched.errors


async def test_a_chart_grows_when_traffic_flows_and_the_page_is_photographed(
    dashboard: Dashboard, browser: Browser
) -> None:
    await show_some_state(dashboard.store, dashboard.backends)
    await FlagStore.of(dashboard.store).set_flag_rule("newCheckout", on=True, percent=25)
    await dashboard.store.set_weight(30)
    watched = await open_page(browser, dashboard.url)
    page = watched.page
    await live(page)
    # The fixture's own requests may have drawn a point or two already (the charts are
    # the buckets in Redis, not what this page saw).
    before = await chart_points(page, "staging")
    load = Load(dashboard.proxy.port, concurrency=2, pause_s=0.02, max_requests=4000)
    load.start()
    try:
        await until(page, POINTS_ABOVE, before + 3, 45, "three more points on the staging chart")
        first = await chart_points(page, "staging")
        await until(page, POINTS_ABOVE, first, 30, "one more point on the staging chart")
    finally:
        result = await load.stop()
    assert result.ok > 0 and not result.failures, result.summary()
    assert await chart_points(page, "production") > 0
    screenshot = screenshot_path()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000
    assert watched.errors == [], watched.errors


async def test_time_from_a_state_change_to_the_page_showing_it(
    dashboard: Dashboard, browser: Browser, redis_url: str, record_property: RecordProperty
) -> None:
    """Measured in the browser, by its clock: logged, not asserted (speed is for bench/).

    From just before the write (through state/, as the CLI makes it) to the page having
    drawn the new weight; then once through `python -m proxy weight`, start-up included."""
    watched = await open_page(browser, dashboard.url)
    page = watched.page
    await live(page)
    timings = []
    for weight in (55, 20, 75, 40, 65, 10, 90, 45, 60, 25):
        before = await page.evaluate("Date.now()")
        await dashboard.store.set_weight(weight)
        await shows_weight(page, weight)
        timings.append(await page.evaluate("window.__switchyard.changedAt") - before)
    before = await page.evaluate("Date.now()")
    done = run_cli("weight", "35", env={"REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    await shows_weight(page, 35)
    cli = await page.evaluate("window.__switchyard.changedAt") - before
    log.warning(
        "dashboard: state change to page, median %s ms, max %s ms (%s); through the CLI %s ms",
        statistics.median(timings),
        max(timings),
        timings,
        cli,
    )
    record_property("state_to_page_ms", timings)
    record_property("cli_to_page_ms", cli)
    assert watched.errors == [], watched.errors


async def shows_weight(page: Page, weight: int) -> None:
    shown = "(w) => document.querySelector('#weight-staging').textContent === w"
    await until(page, shown, f"{weight}%", 10, f"the page to show weight {weight}")
