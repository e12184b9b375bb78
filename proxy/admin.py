"""The admin API (aiohttp): pools, weight, flags, alert, status, audit, metrics.

Reads of the routing state come from Redis when it answers (the truth), the proxy's own
snapshot beside it. Writes go through `state/`, so every running proxy hears of them at
once, and need the admin token (or loopback when none is configured).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from proxy.auth import authorize, bearer
from proxy.errors import BadRequest, NoBackend, ProxyError
from proxy.flagapi import flag_view, rule_from_body, set_rule
from proxy.snapshots import SnapshotFollower
from proxy.stats import Stats
from state import (
    POOLS,
    Change,
    StateError,
    StateStore,
    StateUnavailable,
    parse_flag_name,
    parse_pool,
    parse_route_prefix,
)

log = logging.getLogger("proxy.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STORE = web.AppKey("store", StateStore)
SNAPSHOTS = web.AppKey("snapshots", SnapshotFollower)
STATS = web.AppKey("stats", Stats)
REGISTRY = web.AppKey("registry", CollectorRegistry)
TOKEN = web.AppKey("token", str)
STARTED = web.AppKey("started", float)

MAX_BODY_BYTES = 64 * 1024


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProxyError as exc:
        return web.Response(body=exc.body(), status=exc.status, content_type="application/json")
    except StateUnavailable as exc:
        return _error(503, "state_unavailable", str(exc))
    except ValueError as exc:  # schema validation (state.InvalidValue) and bad numbers
        return _error(400, "bad_request", str(exc))
    except StateError as exc:  # e.g. a key of the wrong type, written by hand
        log.error("admin %s %s failed: %s", request.method, request.path, exc)
        return _error(500, "state_error", str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception:
        log.exception("admin %s %s failed", request.method, request.path)
        return _error(500, "internal_error", "the admin API failed: see the proxy's log")


def _writer(request: web.Request) -> StateStore:
    """Check the caller may write, and return a store that records who they are."""
    peer = request.remote
    authorize(request.app[TOKEN] or None, bearer(request.headers.get("Authorization")), peer)
    store = request.app[STORE]
    return StateStore(store.redis, store.keys, actor=f"admin:{peer}")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _require(data: dict[str, Any], key: str, kind: type, example: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"field {key!r} is missing or not a {kind.__name__}: send {example}")
    return value


def _change(change: Change) -> web.Response:
    return web.json_response(
        {"what": change.what, "changed": change.changed, "before": change.before, "after": change.after}
    )


async def status(request: web.Request) -> web.Response:
    snapshots = request.app[SNAPSHOTS]
    body: dict[str, Any] = {
        "proxy": {
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - request.app[STARTED], 3),
            "snapshot": snapshots.snapshot.to_json(),
            "state_stale": snapshots.stale,
            "state_age_s": None if snapshots.confirmed_at is None else round(snapshots.age_s(), 3),
            "state_error": snapshots.last_error,
            "state_lost": snapshots.state_lost,
            "generation": snapshots.generation,
            "state_restores": snapshots.restores,
            "requests": request.app[STATS].by_version(),
            **_resilience(request.app[STATS]),
        }
    }
    try:
        store = request.app[STORE]
        state = await store.read_state()
        body["redis"] = state.snapshot.to_json()
        body["generation"] = None if state.generation is None else state.generation.to_json()
        body["instances"] = [{"id": i.id, **i.info} for i in await store.instances()]
    except StateUnavailable as exc:
        body["redis"] = None
        body["redis_error"] = str(exc)
    return web.json_response(body)


def _resilience(stats: Stats) -> dict[str, object]:
    out: dict[str, object] = {}
    if stats.retry_budget is not None:
        out["retries"] = stats.retry_budget.retries
    if stats.outliers is not None:
        now = asyncio.get_running_loop().time()
        out["ejected"] = {b: round(until - now, 1) for b, until in sorted(stats.outliers.ejected.items())}
    return out


async def get_pools(request: web.Request) -> web.Response:
    snap = await request.app[STORE].read_snapshot()
    return web.json_response({name: list(snap.pool(name)) for name in POOLS})


async def add_backend(request: web.Request) -> web.Response:
    pool = parse_pool(request.match_info["pool"])
    data = await _json_body(request)
    url = _require(data, "url", str, '{"url": "http://127.0.0.1:9001"}')
    return _change(await _writer(request).add_backend(pool, url))


async def remove_backend(request: web.Request) -> web.Response:
    pool = parse_pool(request.match_info["pool"])
    data = await _json_body(request)
    url = data.get("url") or request.query.get("url")
    if not isinstance(url, str):
        raise BadRequest('say which backend: {"url": "http://127.0.0.1:9001"} or ?url=...')
    return _change(await _writer(request).remove_backend(pool, url))


async def get_weight(request: web.Request) -> web.Response:
    snap = await request.app[STORE].read_snapshot()
    return web.json_response({"weight": snap.weight})


async def put_weight(request: web.Request) -> web.Response:
    data = await _json_body(request)
    weight = _require(data, "weight", int, '{"weight": 30}')
    return _change(await _writer(request).set_weight(weight))


async def get_flags(request: web.Request) -> web.Response:
    snap = await request.app[STORE].read_snapshot()
    names = sorted(set(snap.flags) | set(snap.flag_routes))
    return web.json_response(
        {n: {"on": snap.flags.get(n, False), "routes": list(snap.flag_routes.get(n, ()))} for n in names}
    )


async def put_flag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    data = await _json_body(request)
    if not {"on", "routes", "percent", "variants"} & data.keys():
        raise BadRequest(
            'send {"on": true|false}, {"percent": N} or {"variants": {"a": 50, "b": 50}}, {"routes": [...]}'
        )
    # Check every field before writing any, so a bad request changes nothing.
    parse_flag_name(name)
    routes = data.get("routes")
    if "routes" in data:
        if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
            raise BadRequest('field "routes" must be a list of paths such as ["/set"]')
        routes = [parse_route_prefix(r) for r in routes]
    on = _require(data, "on", bool, '{"on": true}') if "on" in data else None
    rule = rule_from_body(data)
    writer = _writer(request)
    changes = []
    if routes is not None:
        changes.append(await writer.set_flag_routes(name, routes))
    if rule is not None:
        changes.append(await set_rule(writer, name, rule, on))
    elif on is not None:
        changes.append(await writer.set_flag(name, on))
    return web.json_response(
        [{"what": c.what, "changed": c.changed, "before": c.before, "after": c.after} for c in changes]
    )


async def get_flag(request: web.Request) -> web.Response:
    return web.json_response(await flag_view(request.app[STORE], request.match_info["name"]))


async def get_alert(request: web.Request) -> web.Response:
    snap = await request.app[STORE].read_snapshot()
    return web.json_response({"alert": snap.to_json()["alert"]})


async def put_alert(request: web.Request) -> web.Response:
    data = await _json_body(request)
    reason = data.get("reason", "set through the admin API")
    if not isinstance(reason, str):
        raise BadRequest('field "reason" must be a string')
    return _change(await _writer(request).set_alert(reason))


async def delete_alert(request: web.Request) -> web.Response:
    return _change(await _writer(request).clear_alert())


async def audit(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError as exc:
        raise BadRequest("limit must be an integer 1-1000") from exc
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be an integer 1-1000")
    entries = await request.app[STORE].audit_log(limit)
    return web.json_response(
        [
            {"id": e.id, "what": e.what, "before": e.before, "after": e.after, "who": e.who, "at": e.at}
            for e in entries
        ]
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health(request: web.Request) -> web.Response:
    snapshots = request.app[SNAPSHOTS]
    if not snapshots.loaded:
        raise NoBackend("no routing state loaded yet: Redis has not answered")
    return web.json_response({"status": "ok", "state_stale": snapshots.stale})


def build_admin(
    store: StateStore,
    snapshots: SnapshotFollower,
    stats: Stats,
    registry: CollectorRegistry,
    token: str | None,
) -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY_BYTES)
    app[STORE] = store
    app[SNAPSHOTS] = snapshots
    app[STATS] = stats
    app[REGISTRY] = registry
    app[TOKEN] = token or ""
    app[STARTED] = time.monotonic()
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    app.router.add_get("/pools", get_pools)
    app.router.add_post("/pools/{pool}", add_backend)
    app.router.add_delete("/pools/{pool}", remove_backend)
    app.router.add_get("/weight", get_weight)
    app.router.add_put("/weight", put_weight)
    app.router.add_get("/flags", get_flags)
    app.router.add_get("/flags/{name}", get_flag)
    app.router.add_put("/flags/{name}", put_flag)
    app.router.add_get("/alert", get_alert)
    app.router.add_put("/alert", put_alert)
    app.router.add_delete("/alert", delete_alert)
    app.router.add_get("/audit", audit)
    app.router.add_get("/metrics", metrics)
    return app
