"""The push webhook: the code host's push event runs the same deploy as a `git push` here.

The listener closes a sender outside the allowed networks at accept, times the head
and caps connections (`deploy/gate.py`). Then, in this order, and anything that fails
runs nothing: the sender's network (403), the body's size (413) and its arrival within
`webhook_read_timeout_s` (408), the HMAC signature (401), the event (400 when
malformed), the delivery id and the body's digest, each remembered in Redis for
`webhook_replay_ttl_s` (a replay gets 403: GitHub's signature does not cover the
delivery id, so a captured push could come back under a new one); a push that would
take its environment to the deployed commit or an older one (409, unless a force push
and `webhook_allow_force`). A push to main/master or staging answers 202 and deploys in the background
(pushes to one environment wait for each other on the deploy lock); others answer 200
and do nothing. Errors are `{"error": CODE, "message": TEXT}`.
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
from provisioner.deploy import gitrepo
from provisioner.deploy.commands import DeployParts
from provisioner.deploy.gate import Gate, GatedSite
from provisioner.deploy.gitrefs import RefUpdate, decide, parse_sha, stale_push
from provisioner.deploy.signature import Network, networks, parse_push, sender_allowed, verify
from provisioner.errors import DeployError, DeployInputError, ProvisionerError
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
        self.tasks: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/push", self.push)
        app.router.add_get("/health", self.health)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "deploys_running": len(self.tasks)})

    async def push(self, request: web.Request) -> web.Response:
        if not sender_allowed(request.remote, self.allowed):
            log.warning("push webhook: refused sender %s (not in webhook_networks)", request.remote)
            return _error(403, "forbidden", f"sender {request.remote} is not in an allowed network")
        if (request.content_length or 0) > self.max_body_bytes:
            return _error(413, "too_large", f"the body is over {self.max_body_bytes} bytes")
        try:
            async with asyncio.timeout(self.read_timeout_s):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", f"the body is over {self.max_body_bytes} bytes")
        except TimeoutError:
            return _error(408, "too_slow", f"the body did not arrive within {self.read_timeout_s:g}s")
        if not verify(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("push webhook: bad or missing signature from %s", request.remote)
            return _error(401, "bad_signature", f"{SIGNATURE_HEADER} does not sign this body with our secret")
        event = request.headers.get(EVENT_HEADER, "")
        if event == "ping":
            return web.json_response({"ok": "pong"})
        if event != "push":
            return web.json_response({"ignored": f"event {event or '(none)'!r}: only push deploys"})
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
        (decision,) = decide([update])
        log.info(
            "push webhook: delivery %s %s %s: %s", delivery, push.repository, update.new[:8], decision.why
        )
        if decision.env is None:
            return web.json_response({"deploying": None, "why": decision.why})
        try:
            refusal = await self.order(decision.env, update.new, push.forced)
        except StateError as exc:
            return _error(503, "unavailable", str(exc))
        if refusal is not None:
            log.warning("push webhook: delivery %s to %s: %s", delivery, decision.env, refusal)
            return _error(409, "stale", refusal)
        task = asyncio.create_task(
            self.start_deploy(decision.env, update.new, push.forced), name=f"deploy-{delivery}"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.json_response({"deploying": decision.env, "sha": update.new}, status=202)


async def serve_webhook(config: ProvisionerConfig, parts: DeployParts) -> int:
    """Serve until SIGINT or SIGTERM; deploys under way are then stopped (they put their
    server back in its pool on the way out). The caller closes `parts`."""
    if not config.deploy_repo:
        raise ProvisionerError("the webhook needs deploy_repo: the clone pushes are fetched into")
    repo = Path(config.deploy_repo)
    # Webhook deploys of one environment run one after another, each checked again when
    # its turn comes: an old push replayed while a newer one deploys is refused then.
    turns = {env: asyncio.Lock() for env in ("production", "staging")}

    async def order(env: PoolName, sha: str, forced: bool) -> str | None:
        record = await parts.deploys.last_good(env)
        deployed = record.sha if record is not None and record.sha else None
        if deployed is None:
            return None
        try:
            try:
                behind = await gitrepo.is_behind(repo, sha, deployed)
            except DeployError:
                if not config.webhook_fetch:
                    raise
                await gitrepo.fetch(repo)
                behind = await gitrepo.is_behind(repo, sha, deployed)
        except DeployError as exc:
            # Not knowing is not permission: a replay must not slip through a missing commit.
            return f"cannot tell whether {sha[:8]} is newer than the deployed {deployed[:8]}: {exc}"
        return stale_push(deployed, sha, behind, forced=forced, allow_force=config.webhook_allow_force)

    async def start_deploy(env: PoolName, sha: str, forced: bool) -> None:
        try:
            async with turns[env]:
                if config.webhook_fetch:
                    await gitrepo.fetch(repo)
                refusal = await order(env, sha, forced)
                if refusal is not None:
                    log.warning("deploy of %s to %s not run: %s", sha[:8], env, refusal)
                    return
                record = await parts.deployer.deploy(env, sha, repo)
            log.info("deploy of %s to %s %s in %.1fs", sha[:8], env, record.result, record.seconds)
        except (ProvisionerError, StateError) as exc:
            log.error("deploy of %s to %s not run: %s", sha[:8], env, exc)

    allowed = networks(config.webhook_networks)
    hook = PushWebhook(
        secret=config.push_webhook_secret or "",
        allowed=allowed,
        replay_ttl_s=config.webhook_replay_ttl_s,
        max_body_bytes=config.webhook_max_body_bytes,
        deploys=parts.deploys,
        memory=WebhookMemory(parts.redis, parts.deploys.keys),
        order=order,
        start_deploy=start_deploy,
        read_timeout_s=config.webhook_read_timeout_s,
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
