"""The push webhook's listener defences, below aiohttp: a sender outside
`webhook_networks` is closed at accept (before a byte of its head is read), a head
must arrive within `webhook_read_timeout_s` of the accept, at most
`webhook_max_connections` are open at once, and each connection carries one request.

aiohttp has no head timeout and checks nothing before the head, so without this 200
connections sending a header byte every 5 s held the webhook's file descriptors and
made signed pushes time out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from provisioner.deploy.signature import Network, sender_allowed

log = logging.getLogger("provisioner.webhook")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class GateCounts:
    refused_network: int = 0
    refused_full: int = 0
    timed_out: int = 0


@dataclass
class Gate:
    allowed: Sequence[Network]
    read_timeout_s: float
    max_connections: int
    counts: GateCounts = field(default_factory=GateCounts)
    # Each open connection's head timer; cancelled when its request's handler starts.
    open: dict[asyncio.BaseTransport, asyncio.TimerHandle | None] = field(default_factory=dict)

    def install(self, app: web.Application) -> None:
        """The app side: the head arrived (its timer stops), and one request per connection."""
        app.middlewares.append(self._head_arrived)
        app.on_response_prepare.append(_close_after)

    @web.middleware
    async def _head_arrived(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.transport is not None:
            timer = self.open.get(request.transport)
            if timer is not None:
                timer.cancel()
                self.open[request.transport] = None
        return await handler(request)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else None
        if not sender_allowed(address, self.allowed):
            self.counts.refused_network += 1
            log.debug("push webhook: closed %s at accept (not in webhook_networks)", address)
            return False
        if len(self.open) >= self.max_connections:
            self.counts.refused_full += 1
            log.warning("push webhook: %d connections open; closed %s at accept", len(self.open), address)
            return False
        loop = asyncio.get_running_loop()
        self.open[transport] = loop.call_later(self.read_timeout_s, self._late, transport, address)
        return True

    def _late(self, transport: asyncio.BaseTransport, address: str | None) -> None:
        self.counts.timed_out += 1
        log.info("push webhook: no request head from %s in %.0fs; closed", address, self.read_timeout_s)
        self.open.pop(transport, None)
        _abort(transport)

    def forget(self, transport: asyncio.BaseTransport) -> None:
        timer = self.open.pop(transport, None)
        if timer is not None:
            timer.cancel()

    def protocol(self, inner: Callable[[], asyncio.BaseProtocol]) -> asyncio.Protocol:
        return _Gated(self, inner)


async def _close_after(request: web.Request, response: web.StreamResponse) -> None:
    # A code host sends one delivery per connection; keep-alive would let a client hold
    # a connection open past the head timer by dripping a second head.
    response.force_close()


def _abort(transport: asyncio.BaseTransport) -> None:
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()


class _Gated(asyncio.Protocol):
    """Stands in front of aiohttp's protocol, which is made only for an admitted peer."""

    def __init__(self, gate: Gate, inner: Callable[[], asyncio.BaseProtocol]) -> None:
        self.gate = gate
        self.make_inner = inner
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.gate.admit(transport):
            _abort(transport)
            return
        self.transport = transport
        inner = self.make_inner()
        assert isinstance(inner, asyncio.Protocol)
        self.inner = inner
        inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.gate.forget(self.transport)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class GatedSite(web.SockSite):
    """A SockSite whose connections pass the gate first."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, gate: Gate) -> None:
        super().__init__(runner, sock)
        self.gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: self.gate.protocol(server), sock=self._sock, backlog=self._backlog
        )
