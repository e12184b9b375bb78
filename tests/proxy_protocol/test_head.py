"""The request head before anything leaves: trailers, Host, the target's form,
methods and versions the proxy refuses (RFC 9112 sections 2.3, 3.2, 6.1, 7.1.2)."""

from __future__ import annotations

import pytest

from proxy.context import Limits
from state import Snapshot
from tests.proxy_protocol.fakes import BACKEND, OK, StaticState, Wire


def refused(wire: Wire, status: int, code: bytes) -> None:
    """One error answer, the connection closed after it, nothing sent upstream."""
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (status, b"close")
    assert code in r.body
    assert wire.transport.ended
    assert wire.pool.sent() == b""


def forwarded_head(wire: Wire) -> bytes:
    return wire.pool.sent().partition(b"\r\n\r\n")[0]


async def test_trailers_on_a_ready_connection_are_dropped_and_change_nothing() -> None:
    wire = Wire()
    wire.send(
        b"POST /t HTTP/1.1\r\nHost: x\r\nX-Canary: always\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nHost: evil.example\r\nAuthorization: Bearer injected\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nConnection: X-Canary\r\n\r\n"
    )
    head = forwarded_head(wire)
    assert b"Host: x\r\n" in head and b"X-Canary: always\r\n" in head
    for sneaked in (b"evil.example", b"Authorization", b"6.6.6.6", b"X-Forwarded-Host: evil"):
        assert sneaked not in wire.pool.sent()
    assert wire.pool.sent().endswith(b"5\r\nhello\r\n0\r\n\r\n")
    wire.respond(OK)
    assert [r.status for r in wire.responses()] == [200]


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://u:p@a/x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET a/x HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=[
        "missing",
        "two",
        "two-equal",
        "space",
        "userinfo",
        "two-ports",
        "slash",
        "empty",
        "not-http-uri",
        "uri-userinfo",
        "relative-target",
    ],
)
async def test_a_bad_host_or_target_is_400_before_anything_is_forwarded(head: bytes) -> None:
    wire = Wire()
    wire.send(head)
    refused(wire, 400, b"bad_request")


@pytest.mark.parametrize("host", [b"example.com", b"example.com:8080", b"127.0.0.1:1", b"[::1]:8080", b"a_b"])
async def test_a_valid_host_passes(host: bytes) -> None:
    wire = Wire()
    wire.send(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert b"\r\nHost: " + host + b"\r\n" in forwarded_head(wire)


async def test_http_1_0_may_omit_host() -> None:
    wire = Wire()
    wire.send(b"GET / HTTP/1.0\r\n\r\n")
    wire.respond(OK)
    assert [r.status for r in wire.responses()] == [200]


async def test_an_absolute_target_is_forwarded_in_origin_form_with_its_host() -> None:
    wire = Wire()
    wire.send(b"GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n")
    head = forwarded_head(wire)
    assert head.startswith(b"GET /a/b?c=d HTTP/1.1\r\n")
    assert b"Host: Example.com:8080\r\n" in head and b"other" not in head
    assert b"X-Forwarded-Host: Example.com:8080\r\n" in head


async def test_an_absolute_target_without_a_path_becomes_slash() -> None:
    wire = Wire()
    wire.send(b"GET http://example.com?q HTTP/1.1\r\n\r\n")
    assert forwarded_head(wire).startswith(b"GET /?q HTTP/1.1\r\n")


async def test_an_absolute_target_cannot_walk_around_a_blocked_route() -> None:
    blocked = Snapshot(version=1, production=(BACKEND,), flags={"off": True}, flag_routes={"off": ("/set",)})
    wire = Wire(state=StaticState(blocked))
    wire.send(b"GET http://h/.;/set HTTP/1.1\r\nHost: h\r\n\r\n")
    assert [r.status for r in wire.responses()] == [403]
    assert wire.pool.sent() == b""


async def test_connect_is_405_with_allow() -> None:
    wire = Wire()
    wire.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    refused(wire, 405, b"method_not_allowed")
    (r,) = wire.responses()
    assert r.header(b"allow") is not None and b"GET" in r.header(b"allow")  # type: ignore[operator]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /\r\n\r\n",
        b"GET / HTTP/0.9\r\nHost: h\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET / HTTP/3.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: h\r\n\r\n",
    ],
    ids=["http-0.9", "declared-0.9", "2.0", "3.1", "9.9"],
)
async def test_other_versions_are_505(head: bytes) -> None:
    wire = Wire()
    wire.send(head)
    refused(wire, 505, b"http_version_not_supported")


async def test_chunked_from_http_1_0_closes_after_the_response() -> None:
    wire = Wire()
    wire.send(
        b"POST / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\n\r\n"
    )
    wire.respond(OK)
    (r,) = wire.responses()
    assert (r.status, r.header(b"connection")) == (200, b"close")
    assert wire.transport.ended


class FailingState:
    """A snapshot source that breaks on its second read: an unforeseen error."""

    def __init__(self) -> None:
        self.reads = 0

    @property
    def snapshot(self) -> Snapshot:
        self.reads += 1
        if self.reads > 1:
            raise RuntimeError("unforeseen")
        return Snapshot(version=1, production=(BACKEND,))


async def test_an_unforeseen_error_answers_a_pipelined_request_and_ends_the_connection() -> None:
    wire = Wire(state=FailingState())  # type: ignore[arg-type]
    wire.send(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    wire.respond(OK)
    statuses = [(r.status, r.header(b"connection")) for r in wire.responses()]
    assert statuses == [(200, None), (500, b"close")]
    assert wire.transport.ended


async def test_a_superscript_bucket_pipelined_is_answered() -> None:
    wire = Wire(Limits())
    wire.send(
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nCookie: sy_bucket=\xb2\r\n\r\n"
    )
    wire.respond(OK)
    wire.respond(OK)
    assert [r.status for r in wire.responses()] == [200, 200]
