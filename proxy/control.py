"""The public port's own URLs: the original system's /disable/1 and /disable/0."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from proxy.auth import authorize, bearer
from proxy.context import ControlHandler, ControlRequest, LocalReply
from proxy.errors import BadRequest, MethodNotAllowed, ProxyError, StateUnreachable
from state import StateStore, StateUnavailable

DISABLE_FLAG = "disableSET"


class NotFound(ProxyError):
    status = 404
    code = "not_found"


def disable_handler(store: StateStore, admin_token: str | None) -> ControlHandler:
    async def handle(ex: ControlRequest) -> LocalReply:
        path, _, query = ex.target.decode("latin-1").partition("?")
        if path not in ("/disable/1", "/disable/0"):
            raise NotFound(f"{path} is not a control URL: use /disable/1 or /disable/0")
        if ex.method not in (b"GET", b"POST"):
            raise MethodNotAllowed("use GET or POST")
        authorization = next(
            (v.decode("latin-1") for low, _, v in ex.headers if low == b"authorization"), None
        )
        tokens = parse_qs(query).get("token")
        presented = bearer(authorization) or (tokens[0] if tokens else None)
        authorize(admin_token, presented, ex.peer.decode())
        on = path.endswith("/1")
        writer = StateStore(store.redis, store.keys, actor=f"public:{ex.peer.decode()}")
        try:
            change = await writer.set_flag(DISABLE_FLAG, on)
        except StateUnavailable as exc:
            raise StateUnreachable(f"cannot change {DISABLE_FLAG}: {exc}") from exc
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        body = {"flag": DISABLE_FLAG, "on": on, "changed": change.changed}
        return LocalReply(200, json.dumps(body).encode())

    return handle
