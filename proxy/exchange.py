"""One request: routing, the upstream head, retries, every way it ends (responses: proxy/response.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Protocol

from proxy.context import LocalReply, ProxyContext
from proxy.errors import FlagBlocked, NoBackend, ProxyError
from proxy.flagheader import flag_entries
from proxy.forward import request_head
from proxy.http1 import LAST_CHUNK, chunk, simple_response
from proxy.response import ClientPeer, ResponseSide
from proxy.routing import NO_FACTS, Decision, blocking_flag, decide, facts_from, normalise_path
from proxy.upstream import UpstreamConnection
from state import Snapshot

log = logging.getLogger("proxy")

# Methods a retry cannot make happen twice; any other needs an Idempotency-Key.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
# Request body held while no upstream connection takes it; above this, reading pauses.
BUFFER_HIGH_BYTES = 256 * 1024
# A body up to this size is kept until the response starts, for a retry on another backend.
REPLAY_MAX_BYTES = 64 * 1024


class ClientSide(ClientPeer, Protocol):
    """What an exchange needs of the client connection it arrived on: a place to
    write, flow control, a home for its tasks, and callbacks for its end. (uvicorn's
    RequestResponseCycle gets the same, never the protocol object.)"""

    @property
    def peer(self) -> bytes: ...
    @property
    def trusted(self) -> bool: ...  # the peer is one of `trusted_proxies`
    def run_task(self, coro: Awaitable[None]) -> None: ...
    def exchange_finished(self, ex: Exchange) -> None: ...
    def finish_early(self, ex: Exchange) -> None: ...


class Exchange(ResponseSide):
    """One request and its response."""

    __slots__ = (
        "backend",
        "body",
        "body_bytes",
        "chunked",
        "client",
        "cookie",
        "ctx",
        "decision",
        "expects_body",
        "framing",
        "head_sent",
        "headers",
        "host",
        "idempotency_key",
        "keep_alive",
        "method",
        "minor",
        "nominated",
        "out",
        "override",
        "received",
        "reconnected",
        "replay",
        "request_done",
        "response_done",
        "response_started",
        "retried",
        "routed",
        "sent_at",
        "started_at",
        "status",
        "target",
        "until_close",
        "upgrade",
        "upstream",
        "version",
    )

    def __init__(
        self, client: ClientSide, ctx: ProxyContext, method: bytes, target: bytes, minor: int
    ) -> None:
        self.client = client
        self.ctx = ctx
        self.method = method
        self.target = target
        self.minor = minor
        self.headers: list[tuple[bytes, bytes, bytes]] = []  # (lower name, name, value)
        self.cookie: bytes | None = None
        self.override: bytes | None = None
        self.upgrade: bytes | None = None  # the Upgrade header of a request that asks to switch
        self.idempotency_key = False
        # What was sent of the body, kept while small so a failed attempt can be
        # replayed on another backend; None when the request may not be retried.
        self.replay: list[bytes] | None = None
        self.received = 0  # request body bytes read from the client
        self.host: bytes | None = None
        self.chunked = False
        self.expects_body = False
        self.nominated: frozenset[bytes] = frozenset()
        self.keep_alive = True
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.request_done = False
        self.response_started = False
        self.response_done = False
        self.head_sent = False
        self.framing = b""
        self.until_close = False  # the upstream delimits its body by closing
        self.upstream: UpstreamConnection | None = None
        self.backend: str | None = None
        self.decision: Decision | None = None
        self.version = "proxy"
        self.status = 0
        self.retried = False
        self.reconnected = False
        self.sent_at = 0.0
        # Noted only for the access log: a clock call per request is not free.
        self.started_at = ctx.loop.time() if ctx.access_log is not None else 0.0
        self.out: list[bytes] = []  # response bytes gathered during one upstream read

    @property
    def peer(self) -> bytes:
        return self.client.peer

    # ---- request side -------------------------------------------------------

    def start(self) -> None:
        ctx = self.ctx
        ctx.retry_budget.deposit()
        snap = ctx.view()
        if ctx.control is not None and self.target.startswith(b"/disable/"):
            self.client.run_task(self._reply_from(ctx.control(self)))
            return
        if snap.flags_on and snap.flag_routes:
            flag = blocking_flag(snap, normalise_path(self.target.decode("latin-1")))
            if flag is not None:
                self.fail(FlagBlocked(f"this feature is disabled by the flag {flag}", flag=flag))
                return
        if self.cookie is None and self.override is None:
            facts = NO_FACTS
        else:
            facts = facts_from(
                self.cookie.decode("latin-1") if self.cookie else None,
                self.override.decode("latin-1") if self.override else None,
            )
        decision = decide(snap, facts, int(ctx.rng.random() * 100), allow_override=ctx.limits.allow_override)
        # Routed by this snapshot: accounting reads its flags, never a later one's.
        self.decision, self.routed = decision, snap
        pool = snap.pool(decision.version)
        if not pool:
            self.fail(NoBackend("no backend is registered: add one with `python -m proxy pool add`"))
            return
        self.version = decision.version
        if (counter := ctx.version_counters.get(decision.version)) is not None:
            counter.request()
        if self.method in IDEMPOTENT or self.idempotency_key:
            self.replay = []
        self._go(ctx.balancer.pick(pool), snap)

    def _go(self, backend: str, snap: Snapshot) -> None:
        ctx = self.ctx
        self.backend = backend
        ctx.balancer.acquire(backend)
        conn = ctx.upstreams.take_idle(backend)
        if conn is not None:
            self._send(conn, snap)
        else:
            self.client.run_task(self._connect(backend, snap))

    async def _connect(self, backend: str, snap: Snapshot) -> None:
        try:
            conn = await self.ctx.upstreams.connect(backend)
        except ProxyError as exc:
            self.upstream_failed(exc, retry=True, kind="connect")
            return
        if self.client.closed:
            conn.close()
            return
        self._send(conn, snap)

    def replay_on(self, failed: str, backend: str, snap: Snapshot) -> None:
        """Send the request again, its body from the first byte, to `backend`."""
        assert self.replay is not None
        self.ctx.balancer.release(failed)
        self.head_sent = False
        self.body, self.replay = [*self.replay, *self.body], []
        self._go(backend, snap)

    def _send(self, conn: UpstreamConnection, snap: Snapshot) -> None:
        self.upstream = conn
        head = request_head(
            self.method,
            self.target,
            self.headers,
            self.nominated,
            peer=self.client.peer,
            host=self.host,
            minor=self.minor,
            flags_on=snap.flags_on
            if self.decision is None
            else flag_entries(snap.flag_rules, self.decision.bucket),
            chunked=self.chunked,
            upgrade=self.upgrade,
            trusted=self.client.trusted,
        )
        conn.send(self, head, self.method == b"HEAD")
        self.head_sent = True
        if self.body:
            for piece in self.body:
                self._write_body(piece)
            self.body = []
            self.client.resume("buffer")
        if self.request_done:
            if self.chunked:
                conn.write(LAST_CHUNK)
            self.sent_at = self.ctx.loop.time()

    def request_body(self, data: bytes) -> None:
        if self.head_sent:
            self._write_body(data)
        elif self.response_started:
            return  # answered already (an error or a control URL): drain and drop
        else:
            self.body.append(data)
            self.body_bytes += len(data)
            if self.body_bytes > BUFFER_HIGH_BYTES:
                self.client.pause("buffer")

    def _write_body(self, data: bytes) -> None:
        assert self.upstream is not None
        self.upstream.write(chunk(data) if self.chunked else data)
        replay = self.replay
        if replay is not None:
            replay.append(data)
            if len(replay) > 64 or sum(map(len, replay)) > REPLAY_MAX_BYTES:
                self.replay = None  # too much to keep: this request will not be retried

    def request_complete(self) -> None:
        self.request_done = True
        if self.head_sent:
            # The response timer starts here: a client slow to send its body is not the backend's delay.
            self.sent_at = self.ctx.loop.time()
            if self.chunked and self.upstream is not None:
                self.upstream.write(LAST_CHUNK)
        self.maybe_finish()

    # ---- endings ------------------------------------------------------------

    async def _reply_from(self, pending: Awaitable[LocalReply]) -> None:
        try:
            reply = await pending
        except ProxyError as exc:
            self.fail(exc)
            return
        self._local(reply.status, reply.body)

    def fail(self, exc: ProxyError) -> None:
        """Answer with the error's own response, or cut the connection if too late."""
        self.abandon()
        if self.response_started:
            self.client.abort()
            return
        if exc.status >= 500:
            log.warning(
                "upstream error status=%d backend=%s detail=%s", exc.status, self.backend, exc.message
            )
        self._local(exc.status, exc.body())

    def _local(self, status: int, body: bytes) -> None:
        if self.client.closed:
            return
        self.status = status
        self.response_started = True
        self.response_done = True
        if self.expects_body and not (self.request_done and self.head_sent):
            # Answered before the body arrived, or without passing it on: rather
            # than read and drop an unknown amount, or read what follows a refused
            # request, end the connection after this answer.
            self.keep_alive = False
        self.client.write(simple_response(status, body, close=not self.keep_alive))
        self.maybe_finish()

    def maybe_finish(self) -> None:
        if self.response_done and self.request_done:
            self.client.exchange_finished(self)
        elif self.response_done and not self.keep_alive:
            self.client.finish_early(self)

    def abandon(self) -> None:
        """Cut the upstream connection: nothing more it sends belongs to this exchange."""
        conn, self.upstream = self.upstream, None
        if conn is not None:
            conn.sink = None
            conn.close()
