"""A client connection's life at the protocol: keep-alive, pipelining, HTTP/1.0,
Expect: 100-continue, and when bytes may go upstream."""

from __future__ import annotations

from proxy.context import Limits
from proxy.errors import FlagBlocked
from state import Snapshot
from tests.proxy_protocol.fakes import BACKEND, OK, StaticState, Wire, transport_of


def answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_nothing_goes_upstream_before_the_head_is_whole() -> None:
    wire = Wire()
    head = b"GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
    for i in range(len(head) - 1):
        wire.send(head[i : i + 1])
        assert wire.pool.opened == [], f"an upstream was used after {i + 1} bytes of the head"
    wire.send(head[-1:])
    assert wire.pool.sent().startswith(b"GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n")


async def test_keep_alive_serves_requests_one_after_another_on_one_upstream() -> None:
    wire = Wire()
    for n in range(3):
        wire.send(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % n)
        wire.respond(answer(b"r%d" % n))
    assert [r.body for r in wire.responses()] == [b"r0", b"r1", b"r2"]
    assert all(r.header(b"connection") is None for r in wire.responses())
    assert not wire.transport.ended
    assert len(wire.pool.opened) == 1  # the upstream went back to the pool each time
    assert wire.upstream().used == 3


async def test_connection_close_ends_the_connection_after_the_answer() -> None:
    wire = Wire()
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert not wire.transport.ended
    wire.respond(OK)
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (200, b"close")
    # Closed after the write, not cut.
    assert (wire.transport.ended, wire.transport.aborted) == (True, False)


async def test_pipelined_requests_are_forwarded_one_at_a_time_and_answered_in_order() -> None:
    wire = Wire()
    wire.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % n for n in range(3)))
    assert not wire.transport.reading  # the queue is full: read no more
    for n in range(3):
        # Only the request being answered has gone upstream.
        assert wire.pool.sent().count(b"GET /") == n + 1
        wire.respond(answer(b"r%d" % n))
    assert [r.body for r in wire.responses()] == [b"r0", b"r1", b"r2"]
    assert (wire.transport.reading, wire.transport.ended) == (True, False)


async def test_a_malformed_request_pipelined_behind_a_good_one_ends_the_connection() -> None:
    wire = Wire()
    wire.send(
        b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /bad HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    )
    wire.respond(OK)
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (200, b"close")
    assert wire.transport.ended
    assert b"/bad" not in wire.pool.sent()


async def test_http_1_0_closes_after_the_answer_by_default() -> None:
    wire = Wire()
    wire.send(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
    sent = wire.pool.sent()
    assert sent.startswith(b"GET / HTTP/1.1\r\n")  # upstream, the proxy speaks 1.1
    assert b"Via: 1.0 switchyard\r\n" in sent
    wire.respond(answer(b"x" * 5))
    (r,) = wire.responses()
    assert (r.minor, r.status, r.body, r.header(b"connection")) == (0, 200, b"xxxxx", b"close")
    assert wire.transport.ended


async def test_http_1_0_keep_alive_is_honoured() -> None:
    wire = Wire()
    for _ in range(2):
        wire.send(b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
        wire.respond(OK)
    rs = wire.responses()
    assert [(r.minor, r.header(b"connection")) for r in rs] == [(0, b"keep-alive")] * 2
    assert not wire.transport.ended


async def test_http_1_0_gets_a_chunked_response_delimited_by_close() -> None:
    wire = Wire()
    wire.send(b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
    wire.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    out = bytes(wire.transport.buffer)
    assert b"chunked" not in out.lower() and out.endswith(b"\r\n\r\nabc")
    assert wire.transport.ended  # a 1.0 client cannot read chunks: the close ends the body


async def test_expect_100_continue_relays_the_interim_answer() -> None:
    wire = Wire()
    wire.send(b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert b"Expect: 100-continue\r\n" in wire.pool.sent()
    wire.respond(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert bytes(wire.transport.buffer).startswith(b"HTTP/1.1 100 Continue\r\n")
    wire.send(b"hello")
    assert wire.pool.sent().endswith(b"\r\n\r\nhello")
    wire.respond(OK)
    assert bytes(wire.transport.buffer).endswith(b"\r\n\r\nok")
    assert not wire.transport.ended


async def test_a_refused_expectation_is_relayed_and_the_body_never_read() -> None:
    wire = Wire()
    wire.send(b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    wire.respond(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 4\r\n\r\nnope")
    (r,) = wire.responses()
    assert (r.status, r.body, r.header(b"connection")) == (417, b"nope", b"close")
    # The body was never waited for: the connection ends rather than read it.
    assert wire.transport.ended
    assert transport_of(wire.upstream()).closed  # it waits for a body that never comes


BLOCKED = StaticState(
    Snapshot(version=1, production=(BACKEND,), flags={"off": True}, flag_routes={"off": ("/blocked",)})
)


async def test_a_refusal_by_the_proxy_keeps_a_bodiless_connection_alive() -> None:
    wire = Wire(state=BLOCKED)
    wire.send(b"GET /blocked HTTP/1.1\r\nHost: h\r\n\r\nGET /open HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(OK)
    assert [r.status for r in wire.responses()] == [FlagBlocked.status, 200]
    assert wire.pool.sent().startswith(b"GET /open ")
    assert not wire.transport.ended


async def test_nothing_pipelined_behind_a_refused_body_is_forwarded() -> None:
    wire = Wire(state=BLOCKED)
    wire.send(
        b"POST /blocked HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
        b"GET /open HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (FlagBlocked.status, b"close")
    assert wire.transport.ended
    assert wire.pool.sent() == b""


async def test_a_failed_upstream_answer_before_the_body_ends_the_connection() -> None:
    wire = Wire(Limits())
    wire.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    wire.respond(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (503, b"close")
    assert wire.transport.ended
    assert transport_of(wire.upstream()).closed  # it carries half a request: never reused


async def test_the_peer_address_is_forwarded() -> None:
    wire = Wire()
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 10.0.0.1\r\n\r\n")
    sent = wire.pool.sent()
    assert b"X-Forwarded-For: 127.0.0.1\r\n" in sent and b"X-Real-IP: 127.0.0.1\r\n" in sent
    assert b"10.0.0.1" not in sent


async def test_a_trusted_proxys_forwarded_for_is_appended_to() -> None:
    wire = Wire(Limits(trusted_proxies=("127.0.0.0/8",)))
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\n\r\n")
    sent = wire.pool.sent()
    assert b"X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n" in sent
    assert b'Forwarded: for=10.0.0.1, for=127.0.0.1;host="h";proto=http\r\n' in sent


async def test_a_stalled_body_is_the_clients_408_not_the_backends() -> None:
    wire = Wire(Limits(read_timeout_s=30, outlier_consecutive_failures=1))
    wire.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
    client = wire.client
    client.sweep(1000.0)
    wire.send(b"cd")  # progress: the clock starts again
    client.sweep(1029.0)
    client.sweep(1058.0)
    assert wire.responses() == []
    client.sweep(1060.0)
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (408, b"close")
    assert wire.transport.ended and transport_of(wire.upstream()).aborted
    assert wire.ctx.outliers.health == {}  # nothing counted against the backend
