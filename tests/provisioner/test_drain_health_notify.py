"""Draining through a real proxy, health checks and webhooks against real HTTP servers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from provisioner.drain import behind, drain, still_using, until_routed
from provisioner.errors import HealthError
from provisioner.health import verdict, wait_healthy
from provisioner.notify import SIGNATURE_HEADER, Notifier, shown, sign
from proxy.app import ProxyApp
from state import InstanceInfo, StateStore
from state.previews import Preview
from state.previewstore import PreviewStore
from tests.support.ports import free_port
from tests.support.proxy import proxy_config
from tests.support.wait import async_wait_until

URL = "http://127.0.0.1:9100"


class Server:
    """A real aiohttp server whose handler each test supplies."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self.runner, sock).start()
        return self.url


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    yield s
    if s.runner is not None:
        await s.runner.cleanup()


def inst(version: object, inflight: object = None) -> InstanceInfo:
    return InstanceInfo(
        "h:1:8080", {"version": version, "inflight": inflight if inflight is not None else {}}
    )


def test_still_using() -> None:
    assert still_using([], URL, 5) == ()
    assert still_using([inst(5), inst(6, {URL: 0, "http://x:1": 3})], URL, 5) == ()
    assert still_using([inst(4)], URL, 5) == ("h:1:8080",)  # has not applied the removal
    assert still_using([inst(5, {URL: 2})], URL, 5) == ("h:1:8080",)  # requests still in flight
    assert still_using([inst(None)], URL, 5) == ("h:1:8080",)  # says nothing: assume the worst
    assert still_using([inst(7, {URL: True})], URL, 5) == ()  # nonsense counts as nothing in flight


async def test_drain_waits_for_the_request_in_flight(
    store: StateStore, redis_url: str, server: Server
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(text="done")

    backend = await server.start(slow)
    app = ProxyApp(proxy_config(redis_url, heartbeat_interval_s=0.1))
    await app.start()
    try:
        await store.add_backend("production", backend)
        await async_wait_until(
            lambda: bool(app.snapshots.snapshot.production), 5, "the proxy to see the backend"
        )
        async with aiohttp.ClientSession() as session:
            pending = asyncio.ensure_future(session.get(f"http://127.0.0.1:{app.port}/slow"))
            await asyncio.wait_for(started.wait(), 5)
            # With the request held, the drain runs out its deadline and says who still uses it.
            stuck = await drain(store, "production", backend, timeout_s=0.5)
            assert not stuck.drained and len(stuck.waiting_on) == 1
            assert (await store.read_snapshot()).production == ()
            # Once it is answered, the drain completes.
            waiting = asyncio.ensure_future(drain(store, "production", backend, timeout_s=10))
            release.set()
            response = await pending
            assert response.status == 200 and await response.text() == "done"
            response.release()
            done = await waiting
            assert done.drained and done.waiting_on == ()
    finally:
        await app.stop()


def test_behind() -> None:
    assert behind([], 5) == ()
    assert behind([inst(5), inst(6)], 5) == ()
    assert behind([inst(4), inst("5"), inst(None)], 5) == ("h:1:8080",) * 3  # not a number: behind


async def test_a_new_preview_is_said_only_once_the_proxy_routes_it(store: StateStore, redis_url: str) -> None:
    app = ProxyApp(proxy_config(redis_url, heartbeat_interval_s=0.2))
    await app.start()
    said: list[str] = []
    try:
        # until_routed waits on heartbeats: with none yet it would have no one to wait for.
        await async_wait_until(store.instances, 5, "the proxy's first heartbeat")
        preview = Preview(("http://127.0.0.1:9",), "branch", "ab" * 20, "main", 1.0, 1.0)
        await PreviewStore.of(store).put_preview("main", preview)
        routed = await until_routed(store, "preview main", timeout_s=10, say=said.append)
        # Without the wait the follower has not run yet: the preview would answer 404.
        assert routed.drained and "main" in app.snapshots.snapshot.previews
        assert said == []
    finally:
        await app.stop()
    # A proxy that stopped reporting (its heartbeat still fresh) is named at the deadline.
    await store.heartbeat("gone:1:8080", {"version": 0}, ttl_s=30)
    late = await until_routed(store, "preview main", timeout_s=0.3, say=said.append)
    assert not late.drained and "gone:1:8080" in late.waiting_on
    assert said and said[-1].startswith("preview main: not yet routed by ") and "gone:1:8080" in said[-1]


def test_health_verdicts() -> None:
    assert verdict(200, b'{"status": "ok", "version": "v1"}') is None
    assert verdict(503, b"") == "answered 503"
    assert verdict(200, b"<html>") == "answered 200 without JSON"
    assert verdict(200, b'{"status": "starting"}') is not None


async def test_wait_healthy_polls_until_ok(server: Server) -> None:
    answers = [503, 503, 200]

    async def health(request: web.Request) -> web.Response:
        status = answers.pop(0) if answers else 200
        return web.json_response({"status": "ok" if status == 200 else "down"}, status=status)

    url = await server.start(health)
    took = await wait_healthy(url, path="/health", timeout_s=10, interval_s=0.01)
    assert answers == [] and took >= 0


async def test_wait_healthy_gives_up_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(HealthError) as failed:
        await wait_healthy(url, path="/health", timeout_s=0.3, interval_s=0.05)
    assert str(failed.value).startswith(f"{url}/health not healthy after 0s:")


async def test_webhook_is_signed_and_the_secret_never_logged(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "whsec-" + "0123456789abcdef"
    received: list[tuple[bytes, str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get(SIGNATURE_HEADER, "")))
        return web.Response(status=204)

    url = await server.start(hook)
    notifier = Notifier(url + "/hooks/switchyard", secret)
    assert await notifier.notify("server.added", {"server": "sy-prod-1", "pool": "production"})
    ((body, signature),) = received
    assert signature == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert signature == sign(secret, body)
    data = json.loads(body)
    assert (
        data["event"] == "server.added" and data["server"] == "sy-prod-1" and data["source"] == "provisioner"
    )
    assert secret not in body.decode() and secret not in caplog.text


async def test_a_failing_webhook_is_logged_without_credentials(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    url = await server.start(broken)
    hooked = url.replace("http://", "http://user:hunter2@") + "/hook?token=abc"
    assert not await Notifier(hooked, None).notify("server.failed", {"server": "x"})
    assert "answered 500" in caplog.text and "hunter2" not in caplog.text and "abc" not in caplog.text
    assert shown(hooked) == url
    refused = Notifier(f"http://127.0.0.1:{free_port()}/x", "s")
    assert not await refused.notify("server.failed", {"server": "x"})
    # Without a webhook there is nothing to fail.
    assert await Notifier().notify("server.added", {"server": "x"})
