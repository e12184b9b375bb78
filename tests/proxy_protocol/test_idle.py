"""An idle keep-alive connection lets go of its parser and its task set once its answer
is out, and serves its next request as if it had never let go (issue 17: memory per
idle connection). The sweep is called with made-up times."""

from __future__ import annotations

from tests.proxy_protocol.fakes import OK, Wire


def answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_an_idle_connection_drops_its_parser_and_the_next_request_is_served() -> None:
    wire = Wire()
    wire.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(answer(b"one"))
    client = wire.client
    assert client.parser is None and client.queue == [] and not client.paused
    assert client._tasks is None  # the upstream connect's task set, let go too
    wire.send(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(answer(b"two"))
    assert [r.body for r in wire.responses()] == [b"one", b"two"]
    assert not wire.transport.ended


async def test_a_pipelined_request_keeps_the_parser_through_the_first_answer() -> None:
    wire = Wire()
    wire.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(answer(b"one"))
    assert wire.client.parser is not None  # the second is being answered
    wire.respond(answer(b"two"))
    assert [r.body for r in wire.responses()] == [b"one", b"two"]


async def test_a_head_arriving_over_a_sweep_keeps_its_parser() -> None:
    wire = Wire()
    wire.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(OK)
    wire.send(b"GET /2 HTTP/1.1\r\nHo")  # half a head: the parser holds it
    client = wire.client
    client.sweep(1000.0)
    client.sweep(1000.5)
    assert client.parser is not None
    wire.send(b"st: h\r\n\r\n")
    wire.respond(answer(b"two"))
    assert [r.body for r in wire.responses()][-1] == b"two"


async def test_a_connection_answering_a_request_is_not_compacted() -> None:
    wire = Wire()
    wire.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    client = wire.client
    client.sweep(1000.0)
    client.sweep(1000.5)
    assert client.parser is not None and client.current is not None
    wire.respond(answer(b"one"))
    assert [r.body for r in wire.responses()] == [b"one"]
