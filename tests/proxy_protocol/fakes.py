"""The proxy's protocols without sockets: a transport that keeps what is written,
a pool whose backends always have a connection ready, and one client connection
wired to both (uvicorn's tests/protocols way).

Only the transports are fake: the `ClientConnection` and `UpstreamConnection`
under test are the real ones, parsing with httptools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

from proxy.client import ClientConnection
from proxy.context import Limits, ProxyContext
from proxy.pool import UpstreamPool
from proxy.upstream import MAX_HEAD_BYTES, UpstreamConnection
from state import Snapshot

BACKEND = "http://127.0.0.1:9"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class FakeTransport:
    """Enough of asyncio.Transport to watch a protocol: what it wrote, whether it
    closed, aborted or shut its write side (`ended`: either), and whether reading is paused."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.buffer = bytearray()
        self.late: list[bytes] = []  # written after close, which a real transport drops
        self.closed = False
        self.aborted = False
        self.eof = False  # write_eof: the write side is shut, the connection lingers
        self.reading = True
        self.pauses = 0
        self._peer = peer

    @property
    def ended(self) -> bool:
        """Nothing more reaches the client: closed, or its write side shut."""
        return self.closed or self.eof

    def write(self, data: bytes) -> None:
        assert not self.eof, "written after write_eof, which a real transport refuses (RuntimeError)"
        if self.closed:
            self.late.append(data)
            return
        self.buffer += data

    def take(self) -> bytes:
        """What was written since the last take."""
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._peer if name == "peername" else default

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed


def transport_of(conn: UpstreamConnection) -> FakeTransport:
    return cast(FakeTransport, conn.transport)


class MemoryPool(UpstreamPool):
    """Backends with a connection ready at once: a real UpstreamConnection on a
    FakeTransport, so an exchange starts without a task or a socket. With
    `ready=False` a connection is opened only when `gate` is set, as if the
    connect were slow."""

    def __init__(self, *, ready: bool = True, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        super().__init__(connect_timeout_s=1.0, max_idle_per_backend=8, max_head_bytes=max_head_bytes)
        self.ready = ready
        self.gate = asyncio.Event()
        self.opened: list[UpstreamConnection] = []

    def take_idle(self, backend: str) -> UpstreamConnection | None:
        conn = super().take_idle(backend)
        if conn is None and self.ready:
            conn = self._open(backend)
        return conn

    async def connect(self, backend: str) -> UpstreamConnection:
        await self.gate.wait()
        return self._open(backend)

    def _open(self, backend: str) -> UpstreamConnection:
        conn = UpstreamConnection(backend, self.max_head_bytes)
        conn.connection_made(cast(asyncio.Transport, FakeTransport()))
        self.opened.append(conn)
        return conn

    def sent(self) -> bytes:
        """Everything written upstream, over every connection, in opening order."""
        return b"".join(bytes(transport_of(c).buffer) for c in self.opened)


@dataclass
class StaticState:
    snapshot: Snapshot = field(default_factory=lambda: Snapshot(version=1, production=(BACKEND,)))


@dataclass
class Response:
    status: int
    minor: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


class _Collector:
    def __init__(self) -> None:
        self.done: list[Response] = []
        self.parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    def on_message_begin(self) -> None:
        self._headers, self._body = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, data: bytes) -> None:
        self._body.append(data)

    def on_message_complete(self) -> None:
        minor = 1 if self.parser.get_http_version() == "1.1" else 0
        status = self.parser.get_status_code()
        self.done.append(Response(status, minor, self._headers, b"".join(self._body)))


def parse_responses(data: bytes) -> list[Response]:
    """The responses in what the proxy wrote to its client (none answers HEAD).
    A message that never ends (close-delimited, cut short) is not listed."""
    sink = _Collector()
    sink.parser.feed_data(data)
    return sink.done


class Wire:
    """One real ClientConnection on a FakeTransport, its backends in a MemoryPool."""

    def __init__(
        self, limits: Limits | None = None, state: StaticState | None = None, *, ready: bool = True
    ) -> None:
        self.ctx = ProxyContext(state or StaticState(), limits or Limits())
        self.pool = MemoryPool(ready=ready, max_head_bytes=self.ctx.limits.max_response_header_bytes)
        self.ctx.upstreams = self.pool
        self.transport = FakeTransport()
        self.client = ClientConnection(self.ctx)
        self.client.connection_made(cast(asyncio.Transport, self.transport))

    def send(self, data: bytes) -> None:
        """Bytes from the client, as the kernel hands them over: never while
        reading is paused or after the connection was closed."""
        assert self.transport.reading, "the proxy paused reading: a real transport would not deliver this"
        assert not self.transport.closed, "the connection is closed"
        self.client.data_received(data)

    def upstream(self, index: int = -1) -> UpstreamConnection:
        return self.pool.opened[index]

    def respond(self, data: bytes = OK, index: int = -1) -> None:
        """Bytes from the backend on its connection number `index`."""
        self.upstream(index).data_received(data)

    def responses(self) -> list[Response]:
        return parse_responses(bytes(self.transport.buffer))


async def until(condition: Callable[[], object], timeout_s: float = 2.0) -> None:
    """Let the loop run until `condition()` holds, or fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0)
