"""A keep-alive connection to a backend, parsed with httptools.

A connection serves one exchange at a time; the exchange receives the parsed
response through the `ResponseSink` methods and decides whether the connection
goes back to the idle list (`proxy/pool.py`).
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import httptools

from proxy.errors import BadGateway


class ResponseSink(Protocol):
    def on_upstream_head(self, status: int, minor: int, headers: list[tuple[bytes, bytes]]) -> None: ...
    def on_upstream_body(self, data: bytes) -> None: ...
    def on_upstream_complete(self) -> None: ...
    def on_upstream_lost(self, exc: Exception | None) -> None: ...
    def on_upstream_flush(self) -> None: ...
    def on_upstream_upgrade(self, first: bytes) -> None: ...
    def on_upstream_pause_writing(self) -> None: ...
    def on_upstream_resume_writing(self) -> None: ...


class TunnelPeer(Protocol):
    """The client side of a tunnel after a 101."""

    def relay(self, data: bytes) -> None: ...  # bytes from the upstream
    def pause(self, reason: str) -> None: ...
    def resume(self, reason: str) -> None: ...
    def finish(self) -> None: ...


# The default cap on a response head (`max_response_header_bytes`).
MAX_HEAD_BYTES = 64 * 1024


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "awaiting",
        "backend",
        "closed",
        "got_bytes",
        "head_bytes",
        "headers",
        "interim",
        "max_head",
        "no_body",
        "parser",
        "partial",
        "paused",
        "reusable",
        "sink",
        "transport",
        "tunnel",
        "used",
    )

    def __init__(self, backend: str, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self.backend = backend
        self.max_head = max_head_bytes
        # While a response head is awaited, httptools is fed whole heads only: it
        # grows a header value split over reads by concatenation, which is
        # quadratic; so a head arriving in pieces waits here, bounded, until it ends.
        self.awaiting = False
        self.partial = bytearray()
        # After a 1xx the next head may have come in the same read, past the check
        # in data_received: its fields are counted as they are called back.
        self.interim = False
        self.head_bytes = 0
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.closed = False
        self.got_bytes = False
        self.reusable = True
        self.no_body = False  # the request was HEAD: the response has no body whatever it says
        self.paused = False
        self.used = 0
        self.tunnel: TunnelPeer | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.relay(data)
            return
        if self.sink is None:
            # Nothing was asked: an idle connection that speaks is closing or broken.
            self.close()
            return
        self.got_bytes = True
        if self.awaiting:
            partial = self.partial
            if partial:
                scan = len(partial) - 3
                partial += data
                end = partial.find(b"\r\n\r\n", scan)
                if end < 0 and len(partial) <= self.max_head:
                    return
                data = bytes(partial)
                partial.clear()
            else:
                end = data.find(b"\r\n\r\n")
                if end < 0 and len(data) <= self.max_head:
                    partial += data
                    return
            if end < 0 or end > self.max_head:
                self._too_large()
                return
        try:
            self.parser.feed_data(data)
            if self.sink is not None:
                self.sink.on_upstream_flush()
        except httptools.HttpParserUpgrade as upgrade:
            self.reusable = False
            # Read again: the parse may have ended the exchange.
            sink: ResponseSink | None = self.sink
            if sink is not None:
                sink.on_upstream_flush()
                sink.on_upstream_upgrade(data[upgrade.args[0] :])
            else:
                self.close()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._invalid(cause if isinstance(cause, BadGateway) else BadGateway(f"{self.backend}: {exc}"))
        except httptools.HttpParserError as exc:
            self._invalid(BadGateway(f"invalid response from {self.backend}: {exc}"))

    def _invalid(self, exc: BadGateway) -> None:
        self.reusable = False
        self.close()
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_upstream_lost(exc)

    def _too_large(self) -> None:
        self._invalid(
            BadGateway(
                f"the response head from {self.backend} is larger than {self.max_head} bytes",
                backend=self.backend,
            )
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            tunnel.finish()
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_upstream_lost(exc)

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            self.tunnel.finish()
        return None

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause("upstream")
        elif self.sink is not None:
            self.sink.on_upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.resume("upstream")
        elif self.sink is not None:
            self.sink.on_upstream_resume_writing()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        # (Trailer fields land here too; never relayed: their head has gone.)
        if self.interim:
            self.head_bytes += len(name) + len(value) + 4
            if self.head_bytes > self.max_head:
                raise BadGateway(
                    f"the response head from {self.backend} is larger than {self.max_head} bytes",
                    backend=self.backend,
                )
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status >= 200 or status == 101:
            self.awaiting = self.interim = False
        else:
            self.interim = True
        minor = 1 if parser.get_http_version() == "1.1" else 0
        if not parser.should_keep_alive():
            self.reusable = False
        if self.sink is not None:
            self.sink.on_upstream_head(status, minor, self.headers)
        if self.no_body and status >= 200:
            # httptools cannot be told a response answers HEAD; finish the
            # message here and start a fresh parser for the next response.
            self.parser = httptools.HttpResponseParser(self)
            self._complete()

    def on_body(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.on_upstream_body(data)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # interim response: the final one follows on this connection
        self._complete()

    def _complete(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_upstream_complete()

    # used by the exchange
    def send(self, sink: ResponseSink, data: bytes, no_body: bool) -> None:
        self.sink = sink
        self.no_body = no_body
        self.got_bytes = False
        self.awaiting = True
        self.head_bytes = 0
        self.used += 1
        assert self.transport is not None
        self.transport.write(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def start_tunnel(self, peer: TunnelPeer) -> None:
        self.sink = None
        self.tunnel = peer
        self.reusable = False

    def finish(self) -> None:
        """Close after what is queued has been written (the end of a tunnel)."""
        self.reusable = False
        self.tunnel = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
