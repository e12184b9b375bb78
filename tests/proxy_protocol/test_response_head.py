"""The response head from a backend: bounded, handed to httptools whole, and an
idle connection that speaks is not reused."""

from __future__ import annotations

from proxy.context import Limits
from tests.proxy_protocol.fakes import BACKEND, OK, Wire, transport_of

LIMITS = Limits(max_response_header_bytes=4096)


async def test_a_response_head_over_the_limit_in_pieces_is_502_and_the_upstream_closed() -> None:
    wire = Wire(LIMITS)
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    for _ in range(5):
        if wire.responses():
            break
        wire.respond(b"a" * 1000)
    (r,) = wire.responses()
    assert r.status == 502 and b"larger than 4096 bytes" in r.body
    assert transport_of(wire.upstream()).aborted
    assert wire.pool.idle.get(BACKEND, []) == []


async def test_a_response_head_over_the_limit_in_one_read_is_502() -> None:
    wire = Wire(LIMITS)
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    r = wire.responses()[-1]  # after the 100 or not: it was never flushed
    assert r.status == 502 and b"larger than 4096 bytes" in r.body


async def test_a_head_under_the_limit_byte_by_byte_is_relayed_whole() -> None:
    wire = Wire(LIMITS)
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nX-Long: " + b"b" * 3000 + b"\r\nContent-Length: 2\r\n\r\nok"
    for i in range(len(head)):
        wire.respond(head[i : i + 1])
    (r,) = wire.responses()
    assert (r.status, r.header(b"x-long"), r.body) == (200, b"b" * 3000, b"ok")


async def test_response_trailers_are_not_relayed() -> None:
    wire = Wire()
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n")
    (r,) = wire.responses()
    assert (r.status, r.body) == (200, b"ok")
    assert b"X-Trailer" not in bytes(wire.transport.buffer)


async def test_an_idle_upstream_that_speaks_is_closed_not_reused() -> None:
    wire = Wire()
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(OK)
    first = wire.upstream()
    assert wire.pool.idle[BACKEND] == [first]
    first.data_received(b"HTTP/1.1 200 OK\r\nX-Unasked: ")
    assert transport_of(first).aborted
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert wire.upstream() is not first
    wire.respond(OK)
    assert [r.status for r in wire.responses()] == [200, 200]
