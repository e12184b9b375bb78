"""An answer that ends the connection while the client is still sending (a refused
head, a body answered before it arrived) reaches the client whole: the proxy shuts
its write side and drops what arrives until the client closes (RFC 9112 9.6). A
plain close with unread bytes sends a reset, and the reset erases the answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from proxy.app import ProxyApp
from state import StateStore
from tests.support.proxy import proxy_config
from tests.support.rawhttp import RawBackend, read_response

MAX_BODY = 10_000
LINGER_S = 0.5
# Sent in one write after the refused part, so it is still arriving when the
# proxy answers: several reads' worth of bytes the proxy has not read.
TRAILING = b"z" * (4 * 1024 * 1024)

REFUSED = {
    "head over the limit (431)": (
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 431 ",
    ),
    "chunked body over the limit (413)": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (MAX_BODY + 1, b"b" * (MAX_BODY + 1)),
        b"HTTP/1.1 413 ",
    ),
}


@pytest.fixture
async def proxy(store: StateStore, redis_url: str) -> AsyncIterator[ProxyApp]:
    backend = RawBackend()
    await backend.start()
    await store.add_backend("production", backend.url)
    app = ProxyApp(proxy_config(redis_url, max_body_bytes=MAX_BODY, lingering_timeout_s=LINGER_S))
    await app.start()
    yield app
    await app.stop()
    await backend.stop()


@pytest.mark.parametrize("sent, status", REFUSED.values(), ids=REFUSED.keys())
async def test_the_answer_arrives_whole_and_the_connection_ends_with_no_reset(
    proxy: ProxyApp, sent: bytes, status: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(sent + TRAILING)
    try:
        answer = await asyncio.wait_for(read_response(reader), 5)
        rest = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        pytest.fail("the proxy reset the connection: its answer may never have been read")
    finally:
        writer.close()
    assert answer.startswith(status) and b"Connection: close" in answer
    assert rest == b"", "the proxy's write side ends after its answer"


async def test_a_client_that_never_stops_sending_is_cut_off_after_the_linger(proxy: ProxyApp) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(REFUSED["head over the limit (431)"][0])
    answer = await asyncio.wait_for(read_response(reader), 5)
    assert answer.startswith(b"HTTP/1.1 431 ")
    ended = False
    async with asyncio.timeout(10 * LINGER_S + 5):
        while not ended:  # keeps sending, never closes: the linger's bound ends it
            writer.write(b"z" * 1024)
            try:
                await writer.drain()
            except ConnectionError:
                ended = True
    writer.close()
    await asyncio.wait_for(proxy.ctx.no_connections.wait(), 5)
