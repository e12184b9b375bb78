"""The sample app: shows its version and the flags it received, and keeps a tiny key-value store.

`/set` and `/get` are the original system's SET and GET features; the proxy's
`disableSET` flag blocks `/set`, and the app refuses it too when the proxy says
the flag is on, so a request that slips past the proxy still cannot write.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

FLAGS_HEADER = "X-Feature-Flags"
VERSION_HEADER = "X-App-Version"
DISABLE_SET_FLAG = "disableSET"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The store lives in memory; bounds keep a stray loop from growing it without limit.
MAX_KEY_CHARS = 256
MAX_VALUE_CHARS = 4096
MAX_KEYS = 10_000

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
# The colour is written into a style attribute, so only names and hex codes pass.
_COLOR = re.compile(r"^(?:[A-Za-z]{1,20}|#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6})$")


@dataclass(frozen=True, slots=True)
class AppConfig:
    version: str
    color: str = "green"

    def __post_init__(self) -> None:
        if not _VERSION.match(self.version):
            raise ValueError(f"version {self.version!r} is not valid: use letters, digits, . _ - such as v1")
        if not _COLOR.match(self.color):
            raise ValueError(f"color {self.color!r} is not valid: use a CSS name such as green or #1a2b3c")


CONFIG = web.AppKey("config", AppConfig)
STORE: web.AppKey[dict[str, str]] = web.AppKey("store")


def parse_flags(header: str | None) -> list[str]:
    """Names of the flags that are on, in the order sent, without blanks or repeats."""
    if not header:
        return []
    seen: dict[str, None] = {}
    for part in header.split(","):
        name = part.strip()
        if name:
            seen.setdefault(name, None)
    return list(seen)


def wants_json(request: web.Request) -> bool:
    return request.query.get("format") == "json" or "application/json" in request.headers.get("Accept", "")


def _error(status: int, error: str, **extra: str) -> web.Response:
    return web.json_response({"error": error, **extra}, status=status)


async def index(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    flags = parse_flags(request.headers.get(FLAGS_HEADER))
    if wants_json(request):
        return web.json_response({"version": config.version, "flags": flags, "pid": os.getpid()})
    items = "".join(f"<li><code>{html.escape(f)}</code></li>" for f in flags) or "<li>none</li>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Switchyard sample app {config.version}</title></head>"
        f"<body style='font-family: sans-serif; border-top: 12px solid {config.color}; padding: 1em'>"
        f"<h1>Switchyard sample app {config.version}</h1>"
        f"<p>Served by pid {os.getpid()}.</p>"
        f"<h2>Feature flags received</h2><ul>{items}</ul>"
        "</body></html>"
    )
    return web.Response(text=page, content_type="text/html")


async def version(request: web.Request) -> web.Response:
    return web.Response(text=f"{request.app[CONFIG].version}\n")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": request.app[CONFIG].version})


async def _set_params(request: web.Request) -> Mapping[str, object] | web.Response:
    if request.method == "GET":
        return request.query
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            return _error(400, "bad_request", detail="the body is not valid JSON")
        if not isinstance(data, dict):
            return _error(400, "bad_request", detail='send a JSON object {"key": ..., "value": ...}')
        return data
    return await request.post()


async def set_value(request: web.Request) -> web.Response:
    if DISABLE_SET_FLAG in parse_flags(request.headers.get(FLAGS_HEADER)):
        return _error(403, "feature_disabled", flag=DISABLE_SET_FLAG)
    params = await _set_params(request)
    if isinstance(params, web.Response):
        return params
    key, value = params.get("key"), params.get("value")
    if not isinstance(key, str) or not key or not isinstance(value, str):
        return _error(400, "bad_request", detail="key and value are required strings: /set?key=K&value=V")
    if len(key) > MAX_KEY_CHARS or len(value) > MAX_VALUE_CHARS:
        return _error(
            400,
            "bad_request",
            detail=f"key is at most {MAX_KEY_CHARS} and value {MAX_VALUE_CHARS} characters",
        )
    store = request.app[STORE]
    if key not in store and len(store) >= MAX_KEYS:
        return _error(507, "store_full", detail=f"the sample store holds at most {MAX_KEYS} keys")
    store[key] = value
    return web.json_response({"key": key, "value": value, "version": request.app[CONFIG].version})


async def get_value(request: web.Request) -> web.Response:
    key = request.query.get("key")
    if not key:
        return _error(400, "bad_request", detail="key is required: /get?key=K")
    value = request.app[STORE].get(key)
    if value is None:
        return _error(404, "not_found", key=key)
    return web.json_response({"key": key, "value": value, "version": request.app[CONFIG].version})


@web.middleware
async def stamp_version(request: web.Request, handler: Handler) -> web.StreamResponse:
    # A middleware rather than per-handler code, so 404s and 405s carry the header too
    # (on_response_prepare does not fire for the router's own error responses).
    version = request.app[CONFIG].version
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[VERSION_HEADER] = version
        raise
    response.headers[VERSION_HEADER] = version
    return response


def create_app(config: AppConfig) -> web.Application:
    app = web.Application(middlewares=[stamp_version])
    app[CONFIG] = config
    app[STORE] = {}
    app.router.add_get("/", index)
    app.router.add_get("/version", version)
    app.router.add_get("/health", health)
    app.router.add_get("/set", set_value)
    app.router.add_post("/set", set_value)
    app.router.add_get("/get", get_value)
    return app
