"""The rollout on the admin API: `GET /rollout` (the record, verdicts in full) and
`POST /rollout/{pause,resume,abort,promote}` (the admin token, like every write)."""

from __future__ import annotations

from aiohttp import web

from proxy.admin import STORE, TOKEN
from proxy.auth import authorize, bearer
from proxy.errors import BadRequest
from proxy.rollout import operate
from proxy.rollout.machine import COMMANDS
from proxy.rollout.model import RolloutError
from state import StateStore
from state.rollouts import RolloutStore

ROLLOUTS = web.AppKey("rollouts", RolloutStore)
MAX_REASON = 500


async def get_rollout(request: web.Request) -> web.Response:
    rollouts = request.app[ROLLOUTS]
    record = await rollouts.read()
    return web.json_response({"rollout": record, "leader": await rollouts.lease().holder()})


async def post_rollout(request: web.Request) -> web.Response:
    what = request.match_info["action"]
    if what not in COMMANDS:
        raise web.HTTPNotFound()
    peer = request.remote
    authorize(request.app[TOKEN] or None, bearer(request.headers.get("Authorization")), peer)
    reason = await _reason(request)
    store, rollouts = request.app[STORE], request.app[ROLLOUTS]
    actor = f"admin:{peer}"
    try:
        r = await operate.act(
            RolloutStore(rollouts.redis, rollouts.keys, actor=actor, email_host=rollouts.email_host),
            StateStore(store.redis, store.keys, actor=actor),
            what,
            reason,
        )
    except LookupError as exc:
        return web.json_response({"error": "no_rollout", "message": str(exc).strip("'\"")}, status=404)
    except RolloutError as exc:
        return web.json_response({"error": "conflict", "message": str(exc)}, status=409)
    return web.json_response({"rollout": r.to_json()})


async def _reason(request: web.Request) -> str:
    if not request.can_read_body:
        return ""
    try:
        data = await request.json()
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    reason = data.get("reason", "") if isinstance(data, dict) else None
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise BadRequest(f'send {{"reason": "why"}}: a string of at most {MAX_REASON} characters, or no body')
    return reason


def mount_rollout(admin: web.Application, rollouts: RolloutStore) -> None:
    """On the admin app itself, so its middleware turns every error into short JSON."""
    admin[ROLLOUTS] = rollouts
    admin.router.add_get("/rollout", get_rollout)
    admin.router.add_post("/rollout/{action}", post_rollout)
