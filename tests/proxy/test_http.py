"""HTTP/1.1 forwarding through the proxy, on raw sockets so every byte is ours."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from proxy.app import ProxyApp
from state import StateStore
from tests.support.proxy import proxy_config
from tests.support.rawhttp import RawBackend, Reply, exchange, headers_of, read_response
from tests.support.wait import async_wait_until


@pytest.fixture
async def raw(store: StateStore, redis_url: str) -> AsyncIterator[tuple[ProxyApp, RawBackend]]:
    backend = RawBackend()
    await backend.start()
    await store.add_backend("production", backend.url)
    app = ProxyApp(proxy_config(redis_url, read_timeout_s=0.5))
    await app.start()
    yield app, backend
    await app.stop()
    await backend.stop()


async def test_headers_are_rewritten_as_a_proxy_should(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw
    await exchange(
        app.port,
        b"GET /a%2Fb/../c?x=%20y&z HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 10.0.0.1\r\n"
        b"Connection: keep-alive, X-Secret\r\nX-Secret: hop\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
        b"Proxy-Connection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n\r\n",
    )
    sent = backend.requests[-1]
    request_line, _, _ = sent.partition(b"\r\n")
    assert request_line == b"GET /a%2Fb/../c?x=%20y&z HTTP/1.1"  # byte for byte
    h = headers_of(sent)
    assert h[b"host"] == b"shop.example"
    # The client is no trusted proxy (trusted_proxies is empty): its word is dropped.
    assert h[b"x-forwarded-for"] == b"127.0.0.1"
    assert h[b"x-real-ip"] == b"127.0.0.1"
    assert h[b"forwarded"] == b'for=127.0.0.1;host="shop.example";proto=http'
    assert h[b"x-forwarded-proto"] == b"http"
    assert h[b"x-forwarded-host"] == b"shop.example"
    assert h[b"via"] == b"1.1 switchyard"
    for hop in (b"connection", b"x-secret", b"keep-alive", b"te", b"proxy-connection"):
        assert hop not in h, hop
    assert h[b"upgrade-insecure-requests"] == b"1"  # end-to-end, despite its name


async def test_connection_cannot_nominate_essentials_away(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw
    await exchange(
        app.port,
        b"POST /p HTTP/1.1\r\nHost: h\r\nConnection: Host, Content-Length\r\nContent-Length: 3\r\n\r\nabc",
    )
    h = headers_of(backend.requests[-1])
    assert h[b"host"] == b"h" and h[b"content-length"] == b"3"
    assert backend.requests[-1].endswith(b"\r\n\r\nabc")


async def test_chunked_request_body_passes_through(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw
    response = await exchange(
        app.port,
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 200")
    assert backend.requests[-1].endswith(b"hello world")


async def test_chunked_and_close_delimited_responses_reach_the_client(
    raw: tuple[ProxyApp, RawBackend],
) -> None:
    app, backend = raw

    async def chunked(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        return True

    async def until_close(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        return False

    backend.routes[b"/chunked"] = chunked
    backend.routes[b"/close"] = until_close
    r = await exchange(app.port, b"GET /chunked HTTP/1.1\r\nHost: h\r\n\r\n")
    assert headers_of(r)[b"transfer-encoding"] == b"chunked"
    assert r.endswith(b"\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
    # An HTTP/1.1 client gets the close-delimited body re-framed as chunked.
    r = await exchange(app.port, b"GET /close HTTP/1.1\r\nHost: h\r\n\r\n")
    assert r.endswith(b"9\r\nall of it\r\n0\r\n\r\n")
    # An HTTP/1.0 client gets it delimited by the close, as sent.
    r = await exchange(app.port, b"GET /close HTTP/1.0\r\nHost: h\r\n\r\n", until_close=True)
    assert r.startswith(b"HTTP/1.0 200") and r.endswith(b"\r\n\r\nall of it")


async def test_head_204_and_304_carry_no_body_and_keep_alive_works(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw

    async def head(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        return True

    async def no_content(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    async def not_modified(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n')
        return True

    backend.routes.update({b"/head": head, b"/204": no_content, b"/304": not_modified})
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    try:
        writer.write(b"HEAD /head HTTP/1.1\r\nHost: h\r\n\r\n")
        r = await asyncio.wait_for(read_response(reader, head_only=True), 5)
        assert headers_of(r)[b"content-length"] == b"1000"
        for path in (b"/204", b"/304", b"/ok"):
            writer.write(b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % path)
            r = await asyncio.wait_for(read_response(reader), 5)
            assert r.split(b" ")[1] == {b"/204": b"204", b"/304": b"304", b"/ok": b"200"}[path]
        assert r.endswith(b"\r\n\r\nok")  # no stray body bytes from the HEAD or 204 in between
    finally:
        writer.close()
    assert backend.connections == 1  # the upstream connection was kept alive and reused


async def test_pipelined_requests_are_answered_in_order(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw

    def echo(tag: bytes) -> Reply:
        async def reply(_: bytes, w: asyncio.StreamWriter) -> bool:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(tag), tag))
            return True

        return reply

    for i in range(5):
        backend.routes[b"/%d" % i] = echo(b"r%d" % i)
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    try:
        writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5)))
        bodies = [
            (await asyncio.wait_for(read_response(reader), 5)).rsplit(b"\r\n\r\n", 1)[1] for _ in range(5)
        ]
    finally:
        writer.close()
    assert bodies == [b"r0", b"r1", b"r2", b"r3", b"r4"]


async def test_multiple_set_cookie_headers_survive(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw

    async def cookies(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n")
        return True

    backend.routes[b"/c"] = cookies
    r = await exchange(app.port, b"GET /c HTTP/1.1\r\nHost: h\r\nCookie: sy_bucket=50\r\n\r\n")
    assert r.count(b"Set-Cookie: ") == 2 and b"Set-Cookie: a=1" in r and b"Set-Cookie: b=2" in r


async def test_upstream_refused_is_502_with_json(raw: tuple[ProxyApp, RawBackend], store: StateStore) -> None:
    app, backend = raw
    await backend.stop()
    r = await exchange(app.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 502")
    assert b'"error": "bad_gateway"' in r and backend.url.encode() in r


async def test_upstream_silence_is_504(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw
    hang = asyncio.Event()

    async def silent(_: bytes, w: asyncio.StreamWriter) -> bool:
        await hang.wait()
        return False

    backend.routes[b"/slow"] = silent
    try:
        r = await exchange(app.port, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
    finally:
        hang.set()
    assert r.startswith(b"HTTP/1.1 504") and b"gateway_timeout" in r


async def test_upstream_dying_mid_body_closes_the_client(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw

    async def dies(_: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..")
        return False

    backend.routes[b"/dies"] = dies
    r = await exchange(app.port, b"GET /dies HTTP/1.1\r\nHost: h\r\n\r\n", until_close=True)
    head, _, body = r.partition(b"\r\n\r\n")
    assert headers_of(head + b"\r\n\r\n")[b"content-length"] == b"100"
    assert body == b"only ten.."  # and the connection was closed: the client knows it is short


async def test_malformed_request_is_400_and_closed(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw
    r = await exchange(app.port, b"GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n", until_close=True)
    assert r.startswith(b"HTTP/1.1 400") and b"Connection: close" in r
    assert backend.requests == []


async def test_stale_keepalive_connection_is_retried_for_get(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw

    async def once_then_close(_: bytes, w: asyncio.StreamWriter) -> bool:
        # Keep-alive promised, then the backend closes the idle connection.
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()
        return False

    backend.routes[b"/flaky"] = once_then_close
    for _ in range(5):
        r = await exchange(app.port, b"GET /flaky HTTP/1.1\r\nHost: h\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 200"), r


async def test_stop_lets_an_inflight_request_finish(raw: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = raw
    release = asyncio.Event()

    async def slowish(_: bytes, w: asyncio.StreamWriter) -> bool:
        await release.wait()
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
        return True

    backend.routes[b"/slowish"] = slowish
    app.ctx.limits.read_timeout_s = 5.0
    pending = asyncio.create_task(exchange(app.port, b"GET /slowish HTTP/1.1\r\nHost: h\r\n\r\n"))
    await async_wait_until(lambda: bool(backend.requests), 5, "the request to reach the backend")
    stopping = asyncio.create_task(app.stop())
    await async_wait_until(lambda: app.ctx.draining, 5, "stop() to begin draining")
    assert not stopping.done()
    release.set()
    r = await pending
    await stopping
    assert r.startswith(b"HTTP/1.1 200") and r.endswith(b"done")
    assert b"Connection: close" in r
    with contextlib.suppress(ConnectionError):
        await exchange(app.port, b"GET / HTTP/1.1\r\n\r\n")
        raise AssertionError("the proxy still accepts connections after stop()")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\nHost: h\n\n",  # bare LF
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",  # bare CR
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk size
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ],
    ids=["cl-and-te", "differing-cl", "obs-fold", "bare-lf", "bare-cr", "bad-chunk", "te-not-chunked-last"],
)
async def test_smuggling_shapes_are_400_and_closed(
    raw: tuple[ProxyApp, RawBackend], request_bytes: bytes
) -> None:
    app, backend = raw
    r = await exchange(app.port, request_bytes, until_close=True)
    assert r.startswith(b"HTTP/1.1 400") and b"Connection: close" in r
    assert backend.requests == []


async def _expect_server(
    answer_first: bytes | None,
) -> tuple[asyncio.Server, str, list[bytes]]:
    """A backend that honours Expect: 100-continue, or refuses it with `answer_first`."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if answer_first is not None:
            writer.write(answer_first)
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        length = int(headers_of(head)[b"content-length"])
        body = await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen


async def test_expect_100_continue_is_relayed(store: StateStore, redis_url: str) -> None:
    server, url, seen = await _expect_server(None)
    await store.add_backend("production", url)
    app = ProxyApp(proxy_config(redis_url))
    await app.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        writer.write(b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        # The body is held back until the interim answer arrives, as a real client does.
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        r = await asyncio.wait_for(read_response(reader), 5)
        assert r.startswith(b"HTTP/1.1 200 ") and r.endswith(b"hello")
        assert b"expect: 100-continue" in seen[0].lower()
        writer.close()
    finally:
        await app.stop()
        server.close()


async def test_a_refused_expectation_is_answered_and_the_connection_ends(
    store: StateStore, redis_url: str
) -> None:
    refusal = b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 4\r\n\r\nnope"
    server, url, _ = await _expect_server(refusal)
    await store.add_backend("production", url)
    app = ProxyApp(proxy_config(redis_url))
    await app.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        writer.write(b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        r = await asyncio.wait_for(reader.read(-1), 5)  # the proxy closes after the answer
        assert r.startswith(b"HTTP/1.1 417 ") and r.endswith(b"nope")
        assert b"Connection: close" in r
        writer.close()
    finally:
        await app.stop()
        server.close()
