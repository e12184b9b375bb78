"""The OpenFeature Remote Evaluation Protocol (OFREP, open-feature/protocol
`service/openapi.yaml`, v0.3.0): any OpenFeature SDK's OFREP provider evaluates the
proxy's flags for an app.

Answers come from the proxy's snapshot, never from Redis, so an evaluation costs what a
JSON round trip costs and keeps working while Redis is away. Mounted on the admin
listener under /ofrep/v1. Reading flags needs the read-only PROXY_FLAGS_KEY (as a
Bearer token or in X-API-Key), or, when none is set, a loopback caller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from proxy.auth import bearer, is_loopback
from proxy.flageval import Evaluation, TargetingKeyMissing, evaluate
from state import Snapshot
from state.flags import Flag

PREFIX = "/ofrep/v1"
MAX_BODY_BYTES = 64 * 1024


class FlagSource(Protocol):
    """What the endpoints read: the snapshot in use, and whether one was ever loaded."""

    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def loaded(self) -> bool: ...


SOURCE = web.AppKey("ofrep_source", FlagSource)
KEY = web.AppKey("ofrep_key", str)


class Refused(Exception):
    """A request answered with an OFREP error body instead of an evaluation."""

    def __init__(self, status: int, code: str, details: str) -> None:
        super().__init__(details)
        self.status = status
        self.code = code
        self.details = details

    def response(self, key: str | None = None) -> web.Response:
        body: dict[str, str] = {"errorCode": self.code, "errorDetails": self.details}
        if key is not None:
            body = {"key": key, **body}
        return _json(body, status=self.status)


def _json(body: object, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def refusal(
    configured: str | None, authorization: str | None, api_key: str | None, peer: str | None
) -> Refused | None:
    """Why a caller may not read flags (None: it may). Pure, like proxy/auth.py's check."""
    if not configured:
        if is_loopback(peer):
            return None
        return Refused(
            403, "FORBIDDEN", "flags are served only to loopback when no PROXY_FLAGS_KEY is set: set one"
        )
    presented = bearer(authorization) or api_key
    if presented is None:
        return Refused(
            401, "UNAUTHORIZED", "send the flags key: Authorization: Bearer <PROXY_FLAGS_KEY> or X-API-Key"
        )
    if not hmac.compare_digest(presented.encode(), configured.encode()):
        return Refused(401, "UNAUTHORIZED", "the key does not match PROXY_FLAGS_KEY")
    return None


def _check_access(request: web.Request) -> web.Response | None:
    refused = refusal(
        request.app[KEY],
        request.headers.get("Authorization"),
        request.headers.get("X-API-Key"),
        request.remote,
    )
    # The spec gives 401 and 403 no body of their own: errorDetails alone, as for a 500.
    return None if refused is None else _json({"errorDetails": refused.details}, status=refused.status)


async def _targeting_key(request: web.Request) -> str | None:
    """The body's context.targetingKey; a body without a context is an empty one (an
    SDK sends `{}` when the app gives none), which is enough for flags without a split."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Refused(400, "PARSE_ERROR", f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise Refused(400, "PARSE_ERROR", f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Refused(400, "PARSE_ERROR", 'body must be a JSON object: {"context": {"targetingKey": "..."}}')
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise Refused(400, "INVALID_CONTEXT", "context must be a JSON object")
    key = context.get("targetingKey")
    if key is not None and not isinstance(key, str):
        raise Refused(400, "INVALID_CONTEXT", "context.targetingKey must be a string")
    return key or None


def _rules(request: web.Request) -> Mapping[str, Flag]:
    source = request.app[SOURCE]
    if not source.loaded:
        raise Refused(503, "GENERAL", "no flag state loaded yet: Redis has not answered")
    return source.snapshot.flag_rules


def success(name: str, result: Evaluation) -> dict[str, object]:
    body: dict[str, object] = {"key": name, "reason": result.reason, "variant": result.variant}
    if result.value is not None:
        body["value"] = result.value
    return body


async def evaluate_one(request: web.Request) -> web.Response:
    name = request.match_info["key"]
    denied = _check_access(request)
    if denied is not None:
        return denied
    try:
        key = await _targeting_key(request)
        flag = _rules(request).get(name)
        if flag is None:
            raise Refused(
                404, "FLAG_NOT_FOUND", f"flag {name!r} was not found: see `python -m proxy flag list`"
            )
        try:
            return _json(success(name, evaluate(name, flag, key)))
        except TargetingKeyMissing as exc:
            raise Refused(400, "TARGETING_KEY_MISSING", str(exc)) from exc
    except Refused as exc:
        return exc.response(name)


async def evaluate_all(request: web.Request) -> web.Response:
    denied = _check_access(request)
    if denied is not None:
        return denied
    try:
        key = await _targeting_key(request)
        rules = _rules(request)
    except Refused as exc:
        return exc.response()
    flags: list[dict[str, object]] = []
    for name in sorted(rules):
        try:
            flags.append(success(name, evaluate(name, rules[name], key)))
        except TargetingKeyMissing as exc:
            flags.append({"key": name, "errorCode": "TARGETING_KEY_MISSING", "errorDetails": str(exc)})
    body = json.dumps({"flags": flags}, separators=(",", ":")).encode()
    # The answer itself is the version: equal answers for this key, equal tags.
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if _matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def build_ofrep(source: FlagSource, flags_key: str | None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SOURCE] = source
    app[KEY] = flags_key or ""
    app.router.add_post("/evaluate/flags", evaluate_all)
    app.router.add_post("/evaluate/flags/{key}", evaluate_one)
    return app


def mount_ofrep(admin: web.Application, source: FlagSource, flags_key: str | None) -> None:
    """Serve OFREP under /ofrep/v1 on the admin listener."""
    admin.add_subapp(PREFIX, build_ofrep(source, flags_key))
