"""A client connection: parsed with httptools, requests answered in order.

A pipelined request waits in a queue (with reading paused) until the one
before it is answered. A full write buffer on one side pauses reading on the
other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import cast

import httptools

from proxy.context import ProxyContext
from proxy.errors import BadRequest, HeaderTooLarge, PayloadTooLarge, ProxyError, RequestTimeout
from proxy.exchange import Exchange
from proxy.flagheader import variant_pairs
from proxy.http1 import PROTECTED, simple_response
from proxy.upstream import UpstreamConnection

# Request headers the proxy acts on; every other one is only passed along.
NOTED = frozenset(
    {
        b"cookie",
        b"x-canary",
        b"host",
        b"transfer-encoding",
        b"content-length",
        b"upgrade",
        b"idempotency-key",
        b"connection",
    }
)


class ClientConnection(asyncio.Protocol):
    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = b"unknown"
        self.closed = False
        self.receiving: Exchange | None = None  # being parsed
        self.current: Exchange | None = None  # being answered
        self.queue: deque[Exchange] = deque()
        self.paused: set[str] = set()
        self._url: list[bytes] = []
        # Stamped by the sweep (see `sweep`), not per request: -1.0 means "since now".
        self.idle_since = -1.0
        self._tasks: set[asyncio.Task[None]] = set()
        # While a request head is arriving: since when, and how many bytes so far.
        self.head_started: float | None = None
        self.head_bytes = 0
        # After a successful Upgrade: bytes flow raw to and from this upstream.
        self.tunnel: UpstreamConnection | None = None
        self.tunnel_pending: list[bytes] = []

    # ---- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0]).encode()
        self.ctx.connections.add(self)
        self.ctx.no_connections.clear()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.current is not None and self.current.upgrade is not None and self.current.request_done:
            # Sent ahead of the upstream's 101: hold it for the tunnel.
            self.tunnel_pending.append(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0] :]
            if rest:
                self.tunnel_pending.append(rest)
            # Nothing more to parse until the upstream answers the upgrade.
            self.pause("upgrade")
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._protocol_error(cause if isinstance(cause, ProxyError) else BadRequest("malformed request"))
            return
        except httptools.HttpParserError as exc:
            self._protocol_error(BadRequest(f"malformed request: {exc}"))
            return
        if self.head_started is not None:
            # A head still incomplete: httptools buffers a header until it ends,
            # so bound what an endless one can make it hold.
            self.head_bytes += len(data)
            if self.head_bytes > 2 * self.ctx.limits.max_header_bytes:
                self._protocol_error(HeaderTooLarge("request headers are too large"))

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            self.tunnel.finish()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        if not self.ctx.connections:
            self.ctx.no_connections.set()
        for ex in (self.current, *self.queue):
            if ex is not None:
                ex.abandon()
                self._release(ex)
        self.current = None
        self.queue.clear()
        for task in self._tasks:
            task.cancel()
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            tunnel.finish()

    def pause_writing(self) -> None:
        upstream = self.tunnel or (self.current.upstream if self.current is not None else None)
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        upstream = self.tunnel or (self.current.upstream if self.current is not None else None)
        if upstream is not None:
            upstream.resume_reading()

    # ---- httptools callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = []
        self.head_started = -1.0  # stamped by the next sweep
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self.head_bytes += len(url)
        if self.head_bytes > self.ctx.limits.max_header_bytes:
            raise HeaderTooLarge("request headers are too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.ctx.limits.max_header_bytes:
            raise HeaderTooLarge("request headers are too large")
        ex = self.receiving
        if ex is None:
            ex = self.receiving = Exchange(self, self.ctx, self.parser.get_method(), b"".join(self._url), 1)
        low = name.lower()
        ex.headers.append((low, name, value))
        if low not in NOTED:
            return
        if low == b"cookie":
            ex.cookie = value if ex.cookie is None else ex.cookie + b"; " + value
        elif low == b"x-canary":
            ex.override = value
        elif low == b"host":
            ex.host = value
        elif low == b"transfer-encoding":
            ex.chunked = True
            ex.expects_body = True
        elif low == b"content-length":
            ex.expects_body = value.strip() != b"0"
            if value.strip().isdigit() and int(value) > self.ctx.limits.max_body_bytes:
                raise PayloadTooLarge(
                    f"the request body is larger than {self.ctx.limits.max_body_bytes} bytes"
                )
        elif low == b"upgrade":
            ex.upgrade = value
        elif low == b"idempotency-key":
            ex.idempotency_key = True
        elif low == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")} - PROTECTED
            ex.nominated = ex.nominated | tokens

    def on_headers_complete(self) -> None:
        parser = self.parser
        ex = self.receiving
        if ex is None:
            ex = self.receiving = Exchange(self, self.ctx, parser.get_method(), b"".join(self._url), 1)
        self.head_started = None
        ex.minor = 1 if parser.get_http_version() == "1.1" else 0
        ex.keep_alive = parser.should_keep_alive() and not self.ctx.draining
        if ex.upgrade is not None:
            if parser.should_upgrade():
                # Whatever the upstream answers, this connection is not reused for HTTP.
                ex.keep_alive = False
            else:
                ex.upgrade = None
        if self.current is None:
            self.current = ex
            ex.start()
        else:
            self.queue.append(ex)
            self.pause("pipeline")

    def on_body(self, body: bytes) -> None:
        ex = self.receiving
        if ex is not None:
            ex.received += len(body)
            if ex.received > self.ctx.limits.max_body_bytes:
                raise PayloadTooLarge(
                    f"the request body is larger than {self.ctx.limits.max_body_bytes} bytes"
                )
            ex.request_body(body)

    def on_message_complete(self) -> None:
        ex, self.receiving = self.receiving, None
        if ex is not None:
            ex.request_complete()

    # ---- used by exchanges --------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def pause(self, reason: str) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.paused:
            self.paused.discard(reason)
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def run_task(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def exchange_finished(self, ex: Exchange) -> None:
        if ex is not self.current:
            return
        self._release(ex)
        self.current = None
        if self.paused:
            self.resume("upstream")
            self.resume("buffer")
        if not ex.keep_alive or self.ctx.draining:
            if self.transport is not None and not self.closed:
                self.transport.close()
            return
        if self.queue:
            nxt = self.queue.popleft()
            if not self.queue:
                self.resume("pipeline")
            self.current = nxt
            nxt.start()
        else:
            self.idle_since = -1.0

    def finish_early(self, ex: Exchange) -> None:
        if ex is self.current:
            self._release(ex)
            self.current = None
            self.queue.clear()
            if self.transport is not None and not self.closed:
                self.transport.close()

    def finish(self) -> None:
        """The tunnel's far side ended: close once what is queued is written."""
        self.tunnel = None
        if self.transport is not None and not self.closed:
            self.transport.close()

    def start_tunnel(self, upstream: UpstreamConnection, first: bytes) -> None:
        """The upstream switched protocols: from now on, relay bytes both ways."""
        self.tunnel = upstream
        if first:
            self.write(first)
        pending, self.tunnel_pending = self.tunnel_pending, []
        for data in pending:
            upstream.write(data)
        self.resume("upgrade")

    def close_if_idle(self) -> bool:
        if self.current is None and self.receiving is None and self.transport is not None:
            self.transport.close()
            return True
        return False

    # ---- internals ----------------------------------------------------------

    def _release(self, ex: Exchange) -> None:
        if ex.status:
            self.ctx.stats.count(ex.version, ex.status)
            if ex.decision is not None:
                self.ctx.stats.count_flags(
                    variant_pairs(self.ctx.state.snapshot.flag_rules, ex.decision.bucket), ex.status
                )
            if self.ctx.access_log is not None:
                self.ctx.access_log.record(ex, self.loop.time() - ex.started_at)
        if ex.backend is not None:
            self.ctx.balancer.release(ex.backend)
            ex.backend = None

    def sweep(self, now: float) -> None:
        """Enforce the timeouts; called a few times a second for every connection,
        which is far cheaper than a timer armed and cancelled per request."""
        current = self.current
        limits = self.ctx.limits
        if current is None:
            # Timestamps are taken here, a few times a second, rather than on every
            # request: the limits are then up to one sweep interval late, and the
            # data path makes no clock call for them.
            started = self.head_started
            if started is not None:
                if started < 0:
                    self.head_started = now
                elif now - started > limits.header_timeout_s:
                    self._protocol_error(RequestTimeout("the request head did not arrive in time"))
            elif self.idle_since < 0:
                self.idle_since = now
            elif now - self.idle_since > limits.keepalive_timeout_s and self.transport is not None:
                self.transport.close()
        elif (
            current.head_sent
            and not current.response_started
            and current.upstream is not None
            and now - current.sent_at > limits.read_timeout_s
        ):
            current.first_byte_timeout()

    def _protocol_error(self, exc: ProxyError) -> None:
        """A request we cannot parse ends the connection after the answer."""
        self.pause("error")
        current = self.current
        if current is not None and current is self.receiving and not current.response_done:
            # The body of the request being answered is broken: the upstream
            # connection carries half a request, so it goes too.
            current.keep_alive = False
            self.queue.clear()
            current.fail(exc)
            return
        if current is None or current.response_done:
            self.write(simple_response(exc.status, exc.body(), close=True))
            if self.transport is not None:
                self.transport.close()
        else:
            current.keep_alive = False
            self.queue.clear()
