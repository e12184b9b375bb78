"""The response side of an exchange: what its upstream connection reports (the
`ResponseSink` calls), relayed to the client with the framing the client needs,
and a failed attempt counted against its backend and retried when safe."""

from __future__ import annotations

import functools
from typing import Protocol

from proxy.analysis.counts import UpstreamError
from proxy.context import ProxyContext
from proxy.errors import BadGateway, GatewayTimeout, ProxyError
from proxy.forward import interim_head, response_head, switch_head
from proxy.http1 import LAST_CHUNK, chunk
from proxy.routing import BUCKET_COOKIE, Decision
from proxy.upstream import TunnelPeer, UpstreamConnection
from state import Snapshot


class ClientPeer(TunnelPeer, Protocol):
    """What the response side needs of the client connection: a place to write
    and the tunnel's start."""

    @property
    def closed(self) -> bool: ...
    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def start_tunnel(self, upstream: UpstreamConnection, first: bytes) -> None: ...


class Answering(Protocol):
    """The exchange as its response side sees it (the mixin's `self`)."""

    @property
    def client(self) -> ClientPeer: ...
    @property
    def ctx(self) -> ProxyContext: ...

    method: bytes
    minor: int
    upgrade: bytes | None
    keep_alive: bool
    request_done: bool
    response_started: bool
    response_done: bool
    status: int
    framing: bytes
    until_close: bool
    out: list[bytes]
    upstream: UpstreamConnection | None
    backend: str | None
    version: str
    decision: Decision | None
    replay: list[bytes] | None
    reconnected: bool
    retried: bool
    sent_at: float

    def upstream_failed(self, exc: ProxyError, *, retry: bool, kind: UpstreamError) -> None: ...
    def replay_on(self, failed: str, backend: str, snap: Snapshot) -> None: ...
    def fail(self, exc: ProxyError) -> None: ...
    def abandon(self) -> None: ...
    def maybe_finish(self) -> None: ...
    def on_upstream_flush(self) -> None: ...
    def on_upstream_complete(self) -> None: ...


class ResponseSide:
    """The `ResponseSink` half of `Exchange` (a mixin: its state is the exchange's slots)."""

    __slots__ = ()
    # mypy takes the methods' assignments for this class's own attributes: say what it is.
    upstream: UpstreamConnection | None

    def upstream_failed(self: Answering, exc: ProxyError, *, retry: bool, kind: UpstreamError) -> None:
        """The attempt on `self.backend` failed before any response byte: count it
        against the backend and, when safe and within budget, try another one. Only
        the attempt that ends the request counts as its version's upstream error."""
        ctx = self.ctx
        backend = self.backend
        if backend is not None:
            ctx.upstream_failed(backend, self.version)
        if (
            retry
            and not self.retried
            and self.replay is not None
            and not self.response_started
            and not self.client.closed
            and backend is not None
        ):
            snap = ctx.view()
            others = tuple(b for b in snap.pool(self.version) if b != backend)  # type: ignore[arg-type]
            if others and ctx.retry_budget.withdraw():
                self.retried = True
                self.replay_on(backend, ctx.balancer.pick(others), snap)
                return
        counter = ctx.version_counters.get(self.version)
        if counter is not None:
            counter.upstream_error(kind)
        self.fail(exc)

    def on_upstream_head(
        self: Answering, status: int, minor: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        if status == 101 and self.upgrade is not None:
            if (counter := self.ctx.version_counters.get(self.version)) is not None:
                counter.answered(status)
            self.status = status
            self.response_started = True
            self.out.append(switch_head(headers, self.upgrade))
            return
        if status < 200:
            if status != 101 and self.minor == 1:
                self.out.append(interim_head(status, headers))
            return
        self.status = status
        self.response_started = True
        ctx = self.ctx
        counter = ctx.version_counters.get(self.version)
        if self.request_done:
            latency = ctx.loop.time() - self.sent_at
            ctx.stats.observe_latency(self.version, latency)
            if counter is not None:
                counter.response(status, latency)
        elif counter is not None:
            # Answered before the whole request was sent: no latency to speak of.
            counter.answered(status)
        if self.backend is not None:
            if status >= 500:
                ctx.upstream_failed(self.backend, self.version)
            else:
                ctx.outliers.success(self.backend)
        decision = self.decision
        head, self.framing, self.until_close, self.keep_alive = response_head(
            status,
            self.minor,
            minor,
            headers,
            head_request=self.method == b"HEAD",
            # An answer before the whole request (a refused Expect: 100-continue, an
            # early error): the rest of the body is not waited for; the connection ends.
            keep_alive=self.keep_alive and self.request_done and not ctx.draining,
            extra=_bucket_cookie(decision.bucket, ctx.limits.bucket_cookie_max_age_s)
            if decision is not None and decision.new_bucket
            else b"",
        )
        self.out.append(head)

    def on_upstream_body(self: Answering, data: bytes) -> None:
        if self.framing == b"chunked":
            if data:
                self.out.append(chunk(data))
        elif self.framing != b"none":
            self.out.append(data)

    def on_upstream_flush(self: Answering) -> None:
        """End of one upstream read: one write (one syscall) for all it produced."""
        out = self.out
        if out:
            self.client.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def on_upstream_complete(self: Answering) -> None:
        if self.framing == b"chunked":
            self.out.append(LAST_CHUNK)
        self.on_upstream_flush()
        conn, self.upstream = self.upstream, None
        if conn is not None:
            if self.request_done and conn.reusable:
                self.ctx.upstreams.release(conn)
            else:
                conn.close()
        self.response_done = True
        self.maybe_finish()

    def on_upstream_lost(self: Answering, exc: Exception | None) -> None:
        conn, self.upstream = self.upstream, None
        if self.response_done:
            return
        if self.response_started:
            if self.until_close and exc is None:
                self.upstream = conn
                self.on_upstream_complete()  # the close was the end of the body
            else:
                # Never present a truncated body as complete.
                self.client.abort()
            return
        if (
            conn is not None
            and not conn.got_bytes
            and conn.used > 1
            and self.replay is not None
            and not self.reconnected
            and self.backend is not None
        ):
            # The backend closed an idle keep-alive connection as we reused it, a
            # race every keep-alive client has: not the backend's fault, and the
            # request did not reach it, so a fresh connection to it is safe.
            self.reconnected = True
            self.replay_on(self.backend, self.backend, self.ctx.view())
            return
        if not isinstance(exc, ProxyError):
            exc = BadGateway(f"{self.backend} closed the connection before responding", backend=self.backend)
        # No byte of a response came back: nothing was half-done that a retry repeats twice,
        # unless the method is unsafe, which `replay` (None then) already rules out.
        self.upstream_failed(exc, retry=conn is not None and not conn.got_bytes, kind="reset")

    def on_upstream_upgrade(self: Answering, first: bytes) -> None:
        """The upstream switched protocols (its 101 is already written)."""
        conn, self.upstream = self.upstream, None
        if conn is None:
            return
        if self.upgrade is None or self.status != 101:
            self.upstream = conn
            self.fail(BadGateway(f"{self.backend} switched protocols unasked", backend=self.backend))
            return
        conn.start_tunnel(self.client)
        self.client.start_tunnel(conn, first)

    def on_upstream_pause_writing(self: Answering) -> None:
        self.client.pause("upstream")

    def on_upstream_resume_writing(self: Answering) -> None:
        self.client.resume("upstream")

    def first_byte_timeout(self: Answering) -> None:
        self.abandon()
        # The backend may be working on it still: never retried.
        self.upstream_failed(
            GatewayTimeout(f"{self.backend} sent no response in time", backend=self.backend),
            retry=False,
            kind="timeout",
        )


@functools.lru_cache(maxsize=256)
def _bucket_cookie(bucket: int, max_age_s: int) -> bytes:
    return b"Set-Cookie: %s=%d; Path=/; Max-Age=%d; SameSite=Lax; HttpOnly\r\n" % (
        BUCKET_COOKIE.encode(),
        bucket,
        max_age_s,
    )
