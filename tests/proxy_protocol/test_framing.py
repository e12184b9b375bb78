"""Request framing and limits, at the protocol: a real ClientConnection fed bytes
through a fake transport, its upstreams real UpstreamConnections on fake ones."""

from __future__ import annotations

import pytest

from proxy.context import Limits
from tests.proxy_protocol.fakes import OK, Wire, transport_of, until

LIMITS = Limits(max_header_bytes=1024, max_body_bytes=100)


def refused(wire: Wire, status: int, code: bytes) -> None:
    """One error answer, the connection closed after it, nothing sent upstream."""
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (status, b"close")
    assert code in r.body
    assert wire.transport.ended
    assert wire.pool.sent() == b""


async def test_a_head_over_the_limit_is_431() -> None:
    wire = Wire(LIMITS)
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 1100 + b"\r\n\r\n")
    refused(wire, 431, b"request_header_fields_too_large")


async def test_a_target_over_the_limit_is_431() -> None:
    wire = Wire(LIMITS)
    wire.send(b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    refused(wire, 431, b"request_header_fields_too_large")


async def test_a_header_that_never_ends_is_431() -> None:
    # httptools holds an unfinished header line without calling back: the byte count bounds it.
    wire = Wire(LIMITS)
    wire.send(b"GET / HTTP/1.1\r\nX-Endless: ")
    for _ in range(3):
        if wire.transport.ended:
            break
        wire.send(b"a" * 1000)
    refused(wire, 431, b"request_header_fields_too_large")


async def test_a_head_just_under_the_limit_passes() -> None:
    wire = Wire(LIMITS)
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 900 + b"\r\n\r\n")
    wire.respond(OK)
    assert [r.status for r in wire.responses()] == [200]
    assert b"X-Big: " + b"a" * 900 in wire.pool.sent()


async def test_a_declared_body_over_the_limit_is_413_before_anything_is_forwarded() -> None:
    wire = Wire(LIMITS)
    wire.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n")
    refused(wire, 413, b"payload_too_large")


async def test_a_chunked_body_growing_over_the_limit_is_413_and_the_upstream_cut() -> None:
    wire = Wire(LIMITS)
    wire.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"%x\r\n%s\r\n" % (60, b"a" * 60)
    wire.send(piece)
    assert wire.pool.sent().endswith(piece)  # streamed while under the limit
    wire.send(piece)
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (413, b"close")
    assert wire.transport.ended
    # The upstream holds half a request: it cannot be reused.
    assert transport_of(wire.upstream()).aborted
    assert wire.pool.idle.get("http://127.0.0.1:9", []) == []


async def test_a_body_at_the_limit_passes() -> None:
    wire = Wire(LIMITS)
    wire.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"b" * 100)
    wire.respond(OK)
    assert [r.status for r in wire.responses()] == [200]
    assert wire.pool.sent().endswith(b"\r\n\r\n" + b"b" * 100)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: h\n\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo st: h\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ],
    ids=[
        "cl-and-te",
        "differing-cl",
        "duplicate-cl",
        "obs-fold",
        "bare-lf",
        "bare-cr",
        "negative-cl",
        "space-in-name",
        "no-request-line",
        "te-not-chunked-last",
    ],
)
async def test_malformed_heads_are_400_and_never_forwarded(request_bytes: bytes) -> None:
    wire = Wire(LIMITS)
    wire.send(request_bytes)
    refused(wire, 400, b"bad_request")


async def test_a_bad_chunk_size_is_400_and_the_upstream_cut() -> None:
    wire = Wire(LIMITS)
    wire.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert wire.pool.sent().startswith(b"POST / ")  # the head was accepted: it left
    wire.send(b"zz\r\n")
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (400, b"close")
    assert wire.transport.ended
    assert transport_of(wire.upstream()).aborted


@pytest.mark.parametrize("coding", [b"xchunked", b"gzip"])
async def test_an_unusable_transfer_encoding_is_400_before_anything_is_forwarded(coding: bytes) -> None:
    wire = Wire(LIMITS)
    wire.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + coding + b"\r\n\r\n")
    refused(wire, 400, b"bad_request")


async def test_a_chunked_body_is_forwarded_rechunked() -> None:
    wire = Wire(LIMITS)
    wire.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    wire.send(b"2\r\nde\r\n0\r\n\r\n")
    sent = wire.pool.sent()
    assert b"Transfer-Encoding: chunked\r\n" in sent
    assert sent.endswith(b"\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    wire.respond(OK)
    assert [r.status for r in wire.responses()] == [200]
    assert not wire.transport.ended


async def test_chunked_trailers_never_reach_the_forwarded_head() -> None:
    wire = Wire(LIMITS, ready=False)
    wire.send(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Trailer: sneaked\r\n\r\n"
    )
    assert wire.pool.opened == []
    wire.pool.gate.set()
    await until(lambda: wire.pool.sent().endswith(b"0\r\n\r\n"))
    head = wire.pool.sent().partition(b"\r\n\r\n")[0]
    assert b"X-Trailer" not in head


async def test_after_a_refused_head_the_connection_lingers_reading_and_dropping() -> None:
    """RFC 9112 9.6: the write side is shut after the answer, and what the client goes
    on sending is read (a close with unread bytes would reset) but never parsed."""
    wire = Wire(Limits(max_header_bytes=1024, lingering_timeout_s=2.0))
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 1100 + b"\r\n\r\n")
    refused(wire, 431, b"request_header_fields_too_large")
    assert (wire.transport.eof, wire.transport.closed, wire.transport.reading) == (True, False, True)
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" * 3)  # dropped: no answer, nothing upstream
    assert len(wire.responses()) == 1 and wire.pool.sent() == b""
    client = wire.client
    client.sweep(1000.0)
    client.sweep(1001.9)
    assert not wire.transport.closed
    client.sweep(1002.1)  # the linger's bound: a client that never closes is closed
    assert wire.transport.closed


async def test_a_lingering_connection_closes_when_the_client_does() -> None:
    wire = Wire(LIMITS)
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 1100 + b"\r\n\r\n")
    assert wire.transport.eof
    assert not wire.client.eof_received()  # falsy: the transport closes itself
