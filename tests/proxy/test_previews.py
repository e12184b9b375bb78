"""Host-based previews: the pure host match, then a running proxy in front of production,
staging and a preview, with every Host trick the issue names."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from proxy.app import ProxyApp
from proxy.config import ConfigError, load_config
from proxy.previews import preview_name
from state import StateStore
from state.previews import Preview
from state.previewstore import PreviewStore
from tests.support.backends import Backend
from tests.support.ports import free_port
from tests.support.proxy import ProxyProcess
from tests.support.rawhttp import exchange, headers_of
from tests.support.wait import eventually

SUFFIX = b".preview.localhost"
Previewed = tuple[ProxyApp, dict[str, Backend], PreviewStore]


@pytest.mark.parametrize(
    ("host", "name"),
    [
        (b"feature-x.preview.localhost", "feature-x"),
        (b"FEATURE-X.Preview.LocalHost", "feature-x"),
        (b"feature-x.preview.localhost.", "feature-x"),
        (b"feature-x.preview.localhost:8080", "feature-x"),
        (b"feature-x.preview.localhost.:8080", "feature-x"),
        (b"a.b.preview.localhost", "a.b"),  # under the domain: a 404, never production
        (b".preview.localhost", ""),
        (b"x.preview.localhost.evil.com", None),
        (b"x.preview.localhost.evil.com:8080", None),
        (b"xpreview.localhost", None),
        (b"preview.localhost", None),
        (b"preview.localhost:8080", None),
        (b"x.preview.localhost..", None),
        (b"example.com", None),
        (b"127.0.0.1:8080", None),
        (b"[::1]:8080", None),
    ],
)
def test_only_name_dot_preview_domain_is_a_preview(host: bytes, name: str | None) -> None:
    assert preview_name(host, SUFFIX) == name


@pytest.mark.parametrize(
    ("given", "domain"), [("Preview.Example.COM.", "preview.example.com"), ("localhost", "localhost")]
)
def test_the_preview_domain_is_a_lower_case_dns_name(given: str, domain: str) -> None:
    assert load_config(env={"PROXY_PREVIEW_DOMAIN": given}).preview_domain == domain


@pytest.mark.parametrize("given", ["", ".preview.localhost", "a..b", "-x.localhost", "x/y", "*.example.com"])
def test_a_preview_domain_that_is_not_a_dns_name_is_refused_naming_the_setting(given: str) -> None:
    with pytest.raises(ConfigError, match="preview_domain"):
        load_config(env={"PROXY_PREVIEW_DOMAIN": given})


@pytest.fixture
async def previewed(routed: tuple[ProxyApp, dict[str, Backend], StateStore]) -> AsyncIterator[Previewed]:
    proxy, backends, store = routed
    preview = Backend("preview")
    await preview.start()
    previews = PreviewStore.of(store)
    await previews.put_preview("feature-x", Preview((preview.url,), "branch", branch="feature-x"))
    await eventually(lambda: "feature-x" in proxy.snapshots.snapshot.previews, 5, "proxy to see the preview")
    yield proxy, {**backends, "preview": preview}, previews
    await preview.stop()


async def _get(port: int, host: str, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s,
        s.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}) as r,
    ):
        return r.status, dict(r.headers), await r.read()


def _seen_headers(backend: Backend) -> dict[str, str]:
    """The headers of the last request `backend` received."""
    pairs = backend.seen[-1]["headers"]
    assert isinstance(pairs, list)
    return {str(name): str(value) for name, value in pairs}


@pytest.mark.parametrize(
    "host",
    [
        "feature-x.preview.localhost",
        "FEATURE-X.PREVIEW.LOCALHOST",
        "Feature-X.preview.localhost.",
        "feature-x.preview.localhost:8080",
        "feature-x.preview.localhost.:8080",
    ],
)
async def test_a_preview_host_in_any_spelling_reaches_only_the_preview(
    previewed: Previewed, host: str
) -> None:
    proxy, backends, _ = previewed
    for _ in range(20):
        status, headers, body = await _get(proxy.port, host)
        assert status == 200 and headers["X-Backend"] == "preview", body
    assert backends["production"].hits == backends["staging"].hits == 0
    # Counted apart: neither production's nor staging's numbers (the canary split) move.
    assert proxy.ctx.stats.by_version() == {"preview": 20}
    # The backend sees the Host as the client sent it.
    assert _seen_headers(backends["preview"])["Host"] == host


@pytest.mark.parametrize(
    "host", ["nope.preview.localhost", "NOPE.preview.localhost.:80", "a.feature-x.preview.localhost"]
)
async def test_an_unknown_preview_is_a_404_naming_it_never_a_fallback(
    previewed: Previewed, host: str
) -> None:
    proxy, backends, _ = previewed
    status, headers, body = await _get(proxy.port, host)
    name = host.lower().partition(":")[0].removesuffix(".").removesuffix(".preview.localhost")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "error": "no_preview",
        "message": f"no preview named {name!r}: see `python -m provisioner previews list`",
        "preview": name,
    }
    assert backends["production"].hits == backends["staging"].hits == backends["preview"].hits == 0


@pytest.mark.parametrize("host", ["feature-x.preview.localhost.evil.com", "preview.localhost", "example.com"])
async def test_a_host_that_only_contains_the_domain_routes_as_today(previewed: Previewed, host: str) -> None:
    proxy, backends, store = previewed
    await store.set_weight(0)
    await eventually(lambda: proxy.snapshots.snapshot.weight == 0, 5, "weight 0")
    status, headers, _ = await _get(proxy.port, host)
    assert status == 200 and headers["X-Backend"] == "production"
    assert backends["preview"].hits == 0


async def test_a_request_without_host_routes_as_today(previewed: Previewed) -> None:
    proxy, backends, store = previewed
    await store.set_weight(0)
    await eventually(lambda: proxy.snapshots.snapshot.weight == 0, 5, "weight 0")
    answer = await exchange(proxy.port, b"GET / HTTP/1.0\r\n\r\n", until_close=True)
    # aiohttp, the stand-in backend, refuses a request without Host itself (400): what
    # matters is where the proxy sent it.
    assert headers_of(answer.split(b"\r\n\r\n")[0])[b"via"] == b"1.0 switchyard", answer[:200]
    assert proxy.ctx.stats.by_version() == {"production": 1}
    assert backends["preview"].hits == 0


async def test_the_alert_and_the_weight_do_not_apply_to_a_preview_and_flags_do(previewed: Previewed) -> None:
    proxy, backends, store = previewed
    await store.set_weight(100)
    await store.set_alert("high cpu")
    await store.set_flag("beta", True)
    await eventually(
        lambda: proxy.snapshots.snapshot.alert is not None and "beta" in proxy.snapshots.snapshot.flags_on,
        5,
        "alert, weight and flag",
    )
    status, headers, body = await _get(proxy.port, "feature-x.preview.localhost")
    assert status == 200 and headers["X-Backend"] == "preview"
    assert _seen_headers(backends["preview"])["X-Feature-Flags"] == "beta"
    await store.set_flag("disableSET", True)
    await eventually(lambda: "disableSET" in proxy.snapshots.snapshot.flags_on, 5, "disableSET on")
    status, _, body = await _get(proxy.port, "feature-x.preview.localhost", "/set/1")
    assert status == 403 and json.loads(body)["flag"] == "disableSET"


async def test_a_failed_attempt_is_retried_on_the_preview_only(previewed: Previewed) -> None:
    proxy, backends, previews = previewed
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    await previews.put_preview("two", Preview((dead, backends["preview"].url)))
    await previews.put_preview("down", Preview((dead,)))
    await eventually(lambda: {"two", "down"} <= set(proxy.snapshots.snapshot.previews), 5, "previews")
    for _ in range(50):  # the retry budget: a retry spends what 5 requests saved
        assert (await _get(proxy.port, "feature-x.preview.localhost"))[0] == 200
    for _ in range(10):
        status, headers, _ = await _get(proxy.port, "two.preview.localhost")
        assert status == 200 and headers["X-Backend"] == "preview"
    status, _, body = await _get(proxy.port, "down.preview.localhost")
    assert status == 502, body
    assert proxy.ctx.retry_budget.retries >= 1
    assert backends["production"].hits == backends["staging"].hits == 0


async def test_a_removed_preview_answers_404_from_the_next_snapshot(previewed: Previewed) -> None:
    proxy, backends, previews = previewed
    await previews.remove_preview("feature-x")
    await eventually(lambda: not proxy.snapshots.snapshot.previews, 5, "the preview to go")
    status, _, body = await _get(proxy.port, "feature-x.preview.localhost")
    assert status == 404 and json.loads(body)["preview"] == "feature-x"
    assert backends["production"].hits == backends["staging"].hits == 0


async def test_the_readme_commands_reach_a_preview_of_a_proxy_process(
    store: StateStore, proxy_process: Callable[..., ProxyProcess]
) -> None:
    preview = Backend("preview")
    await preview.start()
    try:
        await PreviewStore.of(store).put_preview("feature-x", Preview((preview.url,)))
        proc = proxy_process()

        def curl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["curl", "-sS", "--max-time", "5", "-D", "-", *args],
                capture_output=True,
                text=True,
                timeout=10,
            )

        # curl resolves *.localhost to loopback itself, as browsers do.
        for args in (
            ("-H", "Host: feature-x.preview.localhost", f"http://localhost:{proc.port}/"),
            (f"http://feature-x.preview.localhost:{proc.port}/",),
        ):
            done = await asyncio.to_thread(curl, *args)
            assert done.returncode == 0 and "X-Backend: preview" in done.stdout, done.stdout + done.stderr
        done = await asyncio.to_thread(curl, f"http://other.preview.localhost:{proc.port}/")
        assert done.stdout.startswith("HTTP/1.1 404") and '"preview": "other"' in done.stdout, done.stdout
    finally:
        await preview.stop()
