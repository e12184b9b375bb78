"""The dashboard's routes on the admin app: the page, its static files, the event stream,
and the middleware that refuses cross-site writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from importlib import resources

from aiohttp import web

from proxy.admin import SNAPSHOTS, STATS, STORE, Handler
from proxy.dashboard.feed import Feed
from proxy.dashboard.guard import PAGE_HEADERS, cross_site_write
from state import VersionStatsStore

log = logging.getLogger("proxy.dashboard")

FEED = web.AppKey("dashboard_feed", Feed)
FILES = web.AppKey("dashboard_files", dict)
KEEPALIVE_S = 15.0
RETRY_MS = 2000

_TYPES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "charts.js": "text/javascript",
    "rollout.js": "text/javascript",
    "style.css": "text/css",
    "icon.svg": "image/svg+xml",
}


def _load_files() -> dict[str, bytes]:
    static = resources.files("proxy.dashboard").joinpath("static")
    return {name: static.joinpath(name).read_bytes() for name in _TYPES}


def _file(request: web.Request, name: str) -> web.Response:
    body = request.app[FILES][name]
    return web.Response(body=body, content_type=_TYPES[name], charset="utf-8", headers=PAGE_HEADERS)


async def page(request: web.Request) -> web.Response:
    return _file(request, "index.html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _TYPES or name == "index.html":
        raise web.HTTPNotFound()
    return _file(request, name)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `hello` with the hour of points, then `state` on every change
    and tick. Only what reading allows without a token, so EventSource needs none."""
    feed = request.app[FEED]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Accel-Buffering": "no",  # a buffering proxy in front would hold the stream
        }
    )
    await response.prepare(request)
    sub = feed.subscribe()
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    message = await sub.queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if message is None:
                break
            await response.write(message.encode())
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away
    finally:
        feed.unsubscribe(sub)
    return response


@web.middleware
async def same_origin_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
    headers = request.headers
    if cross_site_write(
        request.method, request.path, headers.get("Origin"), headers.get("Sec-Fetch-Site"), request.host
    ):
        return web.json_response(
            {"error": "cross_site", "message": "changes from another site's page are refused"}, status=403
        )
    return await handler(request)


def mount_dashboard(app: web.Application, inflight: Mapping[str, int], counts: VersionStatsStore) -> Feed:
    """Add the page to the admin app; `inflight` is the balancer's requests per backend,
    `counts` the per-version stats every proxy adds into."""
    feed = Feed(app[STORE], app[SNAPSHOTS], app[STATS], inflight, counts)
    app[FEED] = feed
    app[FILES] = _load_files()
    app.middlewares.append(same_origin_writes)
    app.router.add_get("/", page)
    app.router.add_get("/dashboard/events", events)
    app.router.add_get("/dashboard/{name}", static)

    async def start(_: web.Application) -> None:
        # Mounted by its own module, maybe after this one: asked once routes are final.
        feed.rollout_api = any(r.canonical == "/rollout" for r in app.router.resources())
        feed.start()

    async def stop(_: web.Application) -> None:
        await feed.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return feed
