"""A client connection, parsed with httptools (callbacks: proxy/request.py), answered in order: a
pipelined request waits, reading paused, for the one before; a full buffer pauses the other side."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import cast

import httptools

from proxy.context import ProxyContext
from proxy.errors import BadRequest, HeaderTooLarge, ProxyError, VersionNotSupported
from proxy.exchange import Exchange
from proxy.flagheader import variant_pairs
from proxy.request import RequestSide
from proxy.timeouts import TimeoutSide
from proxy.tunnelside import TunnelSide
from proxy.upstream import UpstreamConnection

NOT_PAUSED: frozenset[str] = frozenset()

log = logging.getLogger("proxy")


class ClientConnection(RequestSide, TunnelSide, TimeoutSide, asyncio.Protocol):
    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        # None while the connection idles between requests (see `_compact`): the parser
        # is most of what an idle keep-alive connection would otherwise hold.
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.peer = b"unknown"
        self.trusted = False
        self.closed = False
        self.receiving: Exchange | None = None  # being parsed
        self.in_head = False  # between a request line and the end of its head
        # A head accepted in this read: started once httptools has judged the whole
        # read, so a head it rejects at its end (a bad Transfer-Encoding) never leaves.
        self.starting: Exchange | None = None
        self.closing = False  # we are ending it: nothing more it sends is parsed
        self.feeding = False  # inside the parser's feed_data: it must not be let go
        self.current: Exchange | None = None  # being answered
        # Pipelined requests waiting their turn: reading pauses once one waits, so this
        # holds a handful at most, and a list costs an idle connection far less than a deque.
        self.queue: list[Exchange] = []
        self.paused: frozenset[str] = NOT_PAUSED  # replaced, never mutated: no set per connection
        self.url_parts: list[bytes] = []
        # Stamped by the sweep (see `sweep`), not per request: -1.0 means "since now".
        self.idle_since = -1.0
        self._tasks: set[asyncio.Task[None]] | None = None  # made on the first, dropped when idle
        # While a request head is arriving: since when, and how many bytes so far.
        self.head_started: float | None = None
        self.head_bytes = 0
        # After a successful Upgrade: bytes flow raw to and from this upstream.
        self.tunnel: UpstreamConnection | None = None
        self.tunnel_pending: list[bytes] | None = None
        self.tunnel_active = False  # bytes crossed since the last sweep
        self.body_seen: tuple[Exchange, int] | None = None  # the sweep's view of a body arriving

    # ---- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0]).encode()
            self.trusted = self.ctx.trusts(self.peer)
        self.ctx.connections.add(self)
        self.ctx.no_connections.clear()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel_active = True
            self.tunnel.write(data)
            return
        if self.closing:
            return
        if self.current is not None and self.current.upgrade is not None and self.current.request_done:
            # Sent ahead of the upstream's 101: hold it for the tunnel.
            self.hold_for_tunnel(data)
            return
        parser = self.parser
        if parser is None:
            parser = self.parser = httptools.HttpRequestParser(self)
        self.feeding = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0] :]
            if rest:
                self.hold_for_tunnel(rest)
            # Nothing more to parse until the upstream answers the upgrade.
            self.pause("upgrade")
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._protocol_error(cause if isinstance(cause, ProxyError) else BadRequest("malformed request"))
        except httptools.HttpParserError as exc:
            version = "HTTP version" in str(exc)
            self._protocol_error(
                VersionNotSupported("use HTTP/1.1") if version else BadRequest(f"malformed request: {exc}")
            )
        else:
            if self.head_started is not None:
                # A head still incomplete: httptools buffers a header until it ends,
                # so bound what an endless one can make it hold.
                self.head_bytes += len(data)
                if self.head_bytes > 2 * self.ctx.limits.max_header_bytes:
                    self._protocol_error(HeaderTooLarge("request headers are too large"))
        finally:
            self.feeding = False
        ex = self.starting
        if ex is not None:
            self.starting = None
            if not self.closing and not ex.response_done:
                try:
                    ex.start()
                except Exception:
                    self._failed_start(ex)

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
        for task in self._tasks or ():
            task.cancel()
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            tunnel.finish()

    def pause_writing(self) -> None:
        if (upstream := self._upstream()) is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        if (upstream := self._upstream()) is not None:
            upstream.resume_reading()

    def _upstream(self) -> UpstreamConnection | None:
        return self.tunnel or (self.current.upstream if self.current is not None else None)

    # ---- used by exchanges --------------------------------------------------

    def write(self, data: bytes) -> None:
        # Nothing once it ends: after `end`'s write_eof a transport refuses writes.
        if not self.closing and self.transport is not None and not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def pause(self, reason: str) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused = self.paused | {reason}

    def resume(self, reason: str) -> None:
        if reason in self.paused:
            self.paused = self.paused - {reason}
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def run_task(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def exchange_finished(self, ex: Exchange) -> None:
        if ex is not self.current:
            return
        self._release(ex)
        self.current = None
        if self.paused:
            self.resume("upstream")
            self.resume("buffer")
        if not ex.keep_alive or self.ctx.draining:
            # Pipelined requests left unanswered, or part of one read: the client has sent more.
            self.end(linger=bool(self.queue) or self.receiving is not None or self.in_head)
            return
        if self.queue:
            nxt = self.queue.pop(0)
            if not self.queue:
                self.resume("pipeline")
            self.current = nxt
            try:
                nxt.start()
            except Exception:
                self._failed_start(nxt)
        else:
            self.idle_since = -1.0
            if not self.feeding and self.receiving is None and not self.in_head:
                # Nothing of a next request has arrived: the parser goes until one does
                # (nginx frees a keep-alive connection's buffers the same way), so an
                # idle connection holds a third of what it would.
                self.parser = None
            if not self._tasks:
                self._tasks = None  # the upstream connect's, done by now: made again on demand

    def finish_early(self, ex: Exchange) -> None:
        if ex is self.current:
            self._release(ex)
            self.current = None
            self.end(linger=True)  # answered before its body arrived: the client may still send it

    def end(self, linger: bool) -> None:
        """Close after the answer. With `linger`, the client may still be sending: the write
        side is shut and what arrives is read and dropped until the client closes, at most
        `lingering_timeout_s`. A socket closed with unread bytes sends a reset, and a reset
        can erase the answer before the client has read it (RFC 9112 9.6, nginx's lingering
        close)."""
        self.closing = True
        self.queue.clear()
        transport = self.transport
        if transport is None or self.closed:
            return
        if not linger or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.idle_since = -1.0  # the sweep's clock for the linger
        self.paused = NOT_PAUSED
        transport.resume_reading()

    def close_if_idle(self) -> bool:
        if self.current is None and self.receiving is None and self.transport is not None:
            self.transport.close()
            return True
        return False

    # ---- internals ----------------------------------------------------------

    def _failed_start(self, ex: Exchange) -> None:
        """Starting `ex` raised: it is answered 500, or the connection ends; never left hanging."""
        log.exception("request failed peer=%s", self.peer.decode())
        ex.keep_alive = False
        try:
            ex.fail(ProxyError("the proxy failed to handle this request"))
        except Exception:
            self.abort()

    def _release(self, ex: Exchange) -> None:
        if ex.status:
            self.ctx.stats.count(ex.version, ex.status)
            if ex.decision is not None:
                self.ctx.stats.count_flags(variant_pairs(ex.routed.flag_rules, ex.decision.bucket), ex.status)
            if self.ctx.access_log is not None:
                self.ctx.access_log.record(ex, self.loop.time() - ex.started_at)
        if ex.backend is not None:
            self.ctx.balancer.release(ex.backend)
            ex.backend = None
