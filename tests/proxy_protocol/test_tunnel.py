"""A tunnel after a 101 ends when no byte crossed it for tunnel_idle_timeout_s.
The sweep is called with made-up times: no waiting."""

from __future__ import annotations

from proxy.context import Limits
from tests.proxy_protocol.fakes import Wire, transport_of

SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x-raw\r\n\r\n"


def closed(wire: Wire) -> bool:
    return wire.transport.ended


def tunnel(timeout_s: float) -> Wire:
    wire = Wire(Limits(tunnel_idle_timeout_s=timeout_s))
    wire.send(b"GET /t HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x-raw\r\n\r\n")
    wire.respond(SWITCH + b"hello")
    assert wire.client.tunnel is not None
    return wire


async def test_an_idle_tunnel_is_closed_both_ways() -> None:
    wire = tunnel(60)
    wire.client.sweep(1000.0)
    wire.client.sweep(1059.0)
    assert not closed(wire)
    wire.client.sweep(1061.0)
    assert closed(wire) and transport_of(wire.upstream()).closed
    assert bytes(wire.transport.buffer).endswith(b"hello")  # what was relayed, then the end


async def test_bytes_either_way_keep_a_tunnel_open() -> None:
    wire = tunnel(60)
    wire.client.sweep(1000.0)
    for minute in range(1, 6):
        if minute % 2:
            wire.send(b"ping")
        else:
            wire.respond(b"pong")
        wire.client.sweep(1000.0 + 50 * minute)
    assert not closed(wire)
    assert transport_of(wire.upstream()).buffer.endswith(b"ping")
    wire.client.sweep(1000.0 + 250 + 61)
    assert closed(wire)
