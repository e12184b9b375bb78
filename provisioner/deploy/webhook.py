"""The push webhook: the code host's push event runs the same deploy as a `git push` here.

The listener closes a sender outside the allowed networks at accept, times the head
and caps connections (`deploy/gate.py`). Then, in this order, and anything that fails
runs nothing: the sender's network (403), the body's size (413) and its arrival within
`webhook_read_timeout_s` (408), the HMAC signature (401), the event (400 when
malformed), the delivery id and the body's digest, each remembered in Redis for
`webhook_replay_ttl_s` (a replay gets 403: GitHub's signature does not cover the
delivery id, so a captured push could come back under a new one); a push that would
take its environment to the deployed commit or an older one (409, unless a force push
and `webhook_allow_force`). A push to main/master or staging answers 202 and deploys
(or with deploy_hold, holds) in the background; pushes to one environment wait for
each other on the deploy lock. With branch_previews, a push or deletion of another
branch answers 202 and deploys or removes its preview, as the post-receive hook does;
others answer 200 and do nothing. Errors are `{"error": CODE, "message": TEXT}`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path

from aiohttp import web

from provisioner.config import ProvisionerConfig
from provisioner.deploy.commands import DeployParts
from provisioner.deploy.gate import Gate, GatedSite
from provisioner.deploy.gitrefs import RefUpdate, decide, parse_sha
from provisioner.deploy.previewplan import BranchAction
from provisioner.deploy.signature import Network, PushEvent, networks, parse_push, sender_allowed, verify
from provisioner.deploy.webhookruns import WebhookRuns
from provisioner.errors import DeployInputError, ProvisionerError
from state import DeployStore, InvalidValue, StateError
from state.model import PoolName
from state.tasks import stop_tasks
from state.webhooks import WebhookMemory

log = logging.getLogger("provisioner.webhook")
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
StartDeploy = Callable[[PoolName, str, bool], Coroutine[object, object, None]]
# Why a push (env, sha, forced) must not deploy, or None.
OrderCheck = Callable[[PoolName, str, bool], Awaitable[str | None]]
PreviewFor = Callable[[RefUpdate], BranchAction | None]
StartPreview = Callable[[BranchAction], Coroutine[object, object, None]]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class PushWebhook:
    def __init__(
        self,
        *,
        secret: str,
        allowed: tuple[Network, ...],
        replay_ttl_s: float,
        max_body_bytes: int,
        deploys: DeployStore,
        memory: WebhookMemory,
        order: OrderCheck,
        start_deploy: StartDeploy,
        read_timeout_s: float = 10.0,
        preview_for: PreviewFor = lambda update: None,
        start_preview: StartPreview | None = None,
    ) -> None:
        self._secret = secret
        self.allowed = allowed
        self.replay_ttl_s = replay_ttl_s
        self.max_body_bytes = max_body_bytes
        self.deploys = deploys
        self.memory = memory
        self.order = order
        self.start_deploy = start_deploy
        self.read_timeout_s = read_timeout_s
        self.preview_for = preview_for  # a branch push's preview action; None: not a preview
        self.start_preview = start_preview
        self.tasks: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/push", self.push)
        app.router.add_get("/health", self.health)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "deploys_running": len(self.tasks)})

    async def push(self, request: web.Request) -> web.Response:
        refused = self._refuse_before_read(request)
        if refused is not None:
            return refused
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        refused = self._refuse_unsigned(request, body)
        if refused is not None:
            return refused
        event = request.headers.get(EVENT_HEADER, "")
        if event == "ping":
            return web.json_response({"ok": "pong"})
        if event != "push":
            return web.json_response({"ignored": f"event {event or '(none)'!r}: only push deploys"})
        fresh = await self._fresh_push(request, body)
        if isinstance(fresh, web.Response):
            return fresh
        return await self._deploy(*fresh)

    def _refuse_before_read(self, request: web.Request) -> web.Response | None:
        if not sender_allowed(request.remote, self.allowed):
            log.warning("push webhook: refused sender %s (not in webhook_networks)", request.remote)
            return _error(403, "forbidden", f"sender {request.remote} is not in an allowed network")
        if (request.content_length or 0) > self.max_body_bytes:
            return _error(413, "too_large", f"the body is over {self.max_body_bytes} bytes")
        return None

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        try:
            async with asyncio.timeout(self.read_timeout_s):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", f"the body is over {self.max_body_bytes} bytes")
        except TimeoutError:
            return _error(408, "too_slow", f"the body did not arrive within {self.read_timeout_s:g}s")

    def _refuse_unsigned(self, request: web.Request, body: bytes) -> web.Response | None:
        if not verify(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("push webhook: bad or missing signature from %s", request.remote)
            return _error(401, "bad_signature", f"{SIGNATURE_HEADER} does not sign this body with our secret")
        return None

    async def _fresh_push(
        self, request: web.Request, body: bytes
    ) -> tuple[PushEvent, RefUpdate, str] | web.Response:
        """The push, its ref update and delivery id; or the answer to a malformed one or a replay."""
        try:
            push = parse_push(body)
            update = RefUpdate(parse_sha(push.before), parse_sha(push.after), push.ref)
            delivery = request.headers.get(DELIVERY_HEADER, "")
            if not delivery:
                raise DeployInputError(f"no {DELIVERY_HEADER} header")
            fresh = await self.deploys.remember_delivery(delivery, self.replay_ttl_s)
            seen = fresh and not await self.memory.remember_body(body, self.replay_ttl_s)
        except (DeployInputError, InvalidValue) as exc:
            return _error(400, "malformed", str(exc))
        except StateError as exc:
            return _error(503, "unavailable", str(exc))
        if not fresh:
            log.warning("push webhook: delivery %s replayed; nothing run", delivery)
            return _error(403, "replayed", f"delivery {delivery} was received before")
        if seen:
            log.warning("push webhook: delivery %s replays an earlier push's body; nothing run", delivery)
            return _error(403, "replayed", "this push was received before, under another delivery id")
        return push, update, delivery

    async def _deploy(self, push: PushEvent, update: RefUpdate, delivery: str) -> web.Response:
        (decision,) = decide([update])
        log.info(
            "push webhook: delivery %s %s %s: %s", delivery, push.repository, update.new[:8], decision.why
        )
        if decision.env is None:
            action = self.preview_for(update)
            if action is None or self.start_preview is None:
                return web.json_response({"deploying": None, "why": decision.why})
            self._background(self.start_preview(action), f"preview-{delivery}")
            answer = {"preview_of": action.branch, "removing": action.remove, "sha": update.new}
            return web.json_response(answer, status=202)
        try:
            refusal = await self.order(decision.env, update.new, push.forced)
        except StateError as exc:
            return _error(503, "unavailable", str(exc))
        if refusal is not None:
            log.warning("push webhook: delivery %s to %s: %s", delivery, decision.env, refusal)
            return _error(409, "stale", refusal)
        self._background(self.start_deploy(decision.env, update.new, push.forced), f"deploy-{delivery}")
        return web.json_response({"deploying": decision.env, "sha": update.new}, status=202)

    def _background(self, work: Coroutine[object, object, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def serve_webhook(config: ProvisionerConfig, parts: DeployParts) -> int:
    """Serve until SIGINT or SIGTERM; deploys under way are then stopped (they put their
    server back in its pool on the way out). The caller closes `parts`."""
    if not config.deploy_repo:
        raise ProvisionerError("the webhook needs deploy_repo: the clone pushes are fetched into")
    deploys = WebhookRuns(config, parts, Path(config.deploy_repo))
    allowed = networks(config.webhook_networks)
    hook = PushWebhook(
        secret=config.push_webhook_secret or "",
        allowed=allowed,
        replay_ttl_s=config.webhook_replay_ttl_s,
        max_body_bytes=config.webhook_max_body_bytes,
        deploys=parts.deploys,
        memory=WebhookMemory(parts.redis, parts.deploys.keys),
        order=deploys.order,
        start_deploy=deploys.start,
        read_timeout_s=config.webhook_read_timeout_s,
        preview_for=deploys.preview_for,
        start_preview=deploys.preview,
    )
    gate = Gate(allowed, config.webhook_read_timeout_s, config.webhook_max_connections)
    app = hook.app()
    gate.install(app)
    # After an answer that left a body unread, aiohttp reads on for `lingering_time` (10 s
    # by default) so the client sees the answer: one second is enough for that.
    runner = web.AppRunner(app, access_log=None, lingering_time=1.0)
    await runner.setup()
    host, _, port = config.webhook_listen.rpartition(":")
    try:
        sock = socket.create_server((host.strip("[]"), int(port)))
        await GatedSite(runner, sock, gate).start()
        log.info("push webhook listening on http://%s/push", config.webhook_listen)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    except OSError as exc:
        raise ProvisionerError(f"cannot listen on {config.webhook_listen}: {exc.strerror or exc}") from exc
    finally:
        await stop_tasks(list(hook.tasks), 120.0)
        await runner.cleanup()
    return 0
