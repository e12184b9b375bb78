"""The request side of a client connection: the httptools callbacks that turn
bytes into exchanges, the checks a head must pass before anything leaves
(RFC 9112 2.3, 3.2, 6.1), and the answer to a request that cannot be parsed."""

from __future__ import annotations

import asyncio
from typing import Protocol

import httptools

from proxy.context import ProxyContext
from proxy.errors import (
    BadRequest,
    ConnectNotAllowed,
    HeaderTooLarge,
    PayloadTooLarge,
    ProxyError,
    VersionNotSupported,
)
from proxy.exchange import ClientSide, Exchange
from proxy.http1 import PROTECTED, simple_response, split_absolute, valid_host

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


class Parsing(ClientSide, Protocol):
    """The client connection as its request side sees it (the mixin's `self`)."""

    @property
    def ctx(self) -> ProxyContext: ...
    @property
    def parser(self) -> httptools.HttpRequestParser | None: ...
    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def queue(self) -> list[Exchange]: ...
    def end(self, linger: bool) -> None: ...

    url_parts: list[bytes]
    receiving: Exchange | None
    current: Exchange | None
    starting: Exchange | None
    closing: bool
    in_head: bool
    head_started: float | None
    head_bytes: int


class RequestSide:
    """The httptools callbacks of `ClientConnection` (a mixin: its state is the connection's)."""

    # mypy takes the methods' assignments for this class's own attributes: say what they are.
    url_parts: list[bytes]
    receiving: Exchange | None
    current: Exchange | None
    starting: Exchange | None
    head_started: float | None

    def on_message_begin(self: Parsing) -> None:
        self.url_parts = []
        self.in_head = True
        self.head_started = -1.0  # stamped by the next sweep
        self.head_bytes = 0

    def on_url(self: Parsing, url: bytes) -> None:
        self.url_parts.append(url)
        self.head_bytes += len(url)
        if self.head_bytes > self.ctx.limits.max_header_bytes:
            raise HeaderTooLarge("request headers are too large")

    def on_header(self: Parsing, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.ctx.limits.max_header_bytes:
            raise HeaderTooLarge("request headers are too large")
        if not self.in_head:
            # A chunked body's trailer field: dropped, never merged into the head
            # (which may not have left yet) nor passed on (README: trailers).
            return
        ex = self.receiving
        if ex is None:
            ex = self.receiving = Exchange(
                self, self.ctx, _parser(self).get_method(), b"".join(self.url_parts), 1
            )
        low = name.lower()
        ex.headers.append((low, name, value))
        if low not in NOTED:
            return
        if low == b"cookie":
            ex.cookie = value if ex.cookie is None else ex.cookie + b"; " + value
        elif low == b"x-canary":
            ex.override = value
        elif low == b"host":
            if ex.host is not None:
                raise BadRequest("more than one Host header")
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

    def on_headers_complete(self: Parsing) -> None:
        parser = _parser(self)
        ex = self.receiving
        if ex is None:
            ex = self.receiving = Exchange(self, self.ctx, parser.get_method(), b"".join(self.url_parts), 1)
        self.head_started = None
        self.in_head = False
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise VersionNotSupported(f"HTTP/{version} is not supported: use HTTP/1.1")
        ex.minor = 1 if version == "1.1" else 0
        host = ex.host
        if ex.target[:1] != b"/" or host is None or not valid_host(host) or ex.method == b"CONNECT":
            check_target(ex)  # refuses, or rewrites an absolute-form target
        ex.keep_alive = parser.should_keep_alive() and not self.ctx.draining
        if ex.chunked and not ex.minor:
            # RFC 9112 6.1: chunked from an HTTP/1.0 client is suspect framing.
            ex.keep_alive = False
        if ex.upgrade is not None:
            if parser.should_upgrade():
                # Whatever the upstream answers, this connection is not reused for HTTP.
                ex.keep_alive = False
            else:
                ex.upgrade = None
        if self.closing:
            return
        if self.current is None:
            self.current = ex
            self.starting = ex
        else:
            self.queue.append(ex)
            self.pause("pipeline")

    def on_body(self: Parsing, body: bytes) -> None:
        ex = self.receiving
        if ex is not None:
            ex.received += len(body)
            if ex.received > self.ctx.limits.max_body_bytes:
                raise PayloadTooLarge(
                    f"the request body is larger than {self.ctx.limits.max_body_bytes} bytes"
                )
            ex.request_body(body)

    def on_message_complete(self: Parsing) -> None:
        ex, self.receiving = self.receiving, None
        if ex is not None:
            ex.request_complete()

    def _protocol_error(self: Parsing, exc: ProxyError) -> None:
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
            self.write(simple_response(exc.status, exc.body(), close=True, extra=exc.extra))
            self.end(linger=True)  # what the client sends after a head we refused is unread
        else:
            current.keep_alive = False
            self.queue.clear()


def _parser(conn: Parsing) -> httptools.HttpRequestParser:
    # Callbacks come only from inside the parser's feed_data: it is there.
    parser = conn.parser
    if parser is None:
        raise ProxyError("a parser callback with no parser")
    return parser


def check_target(ex: Exchange) -> None:
    """RFC 9112 3.2: the target's form and the Host field, before anything leaves."""
    if ex.method == b"CONNECT":
        raise ConnectNotAllowed("CONNECT is not supported by this proxy")
    target = ex.target
    if target[:1] != b"/" and not (target == b"*" and ex.method == b"OPTIONS"):
        split = split_absolute(target)
        if split is None:
            raise BadRequest("the request target is neither a path nor an http URI")
        # RFC 9112 3.2.2: the authority of an absolute-form target replaces Host.
        ex.target, ex.host = split
        ex.headers = [h for h in ex.headers if h[0] != b"host"]
        ex.headers.append((b"host", b"Host", ex.host))
    elif ex.host is None:
        if ex.minor:
            raise BadRequest("the request has no Host header")
    elif not valid_host(ex.host):
        raise BadRequest("the Host header is not a valid host[:port]")
