"""Limits on what a client may send: head size (431), body size (413), a head
that stalls (408). Each ends the connection after the answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from proxy.app import ProxyApp
from state import StateStore
from tests.support.proxy import proxy_config
from tests.support.rawhttp import RawBackend, exchange, read_response

MAX_BODY = 10_000


@pytest.fixture
async def limited(store: StateStore, redis_url: str) -> AsyncIterator[tuple[ProxyApp, RawBackend]]:
    backend = RawBackend()
    await backend.start()
    await store.add_backend("production", backend.url)
    app = ProxyApp(proxy_config(redis_url, max_body_bytes=MAX_BODY, header_timeout_s=0.3))
    await app.start()
    yield app, backend
    await app.stop()
    await backend.stop()


async def test_headers_over_64_kib_are_431(limited: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = limited
    many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(70))
    r = await exchange(app.port, b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n", until_close=True)
    assert r.startswith(b"HTTP/1.1 431 ") and b"Connection: close" in r
    assert b"request_header_fields_too_large" in r
    assert backend.requests == []


async def test_headers_just_under_the_limit_pass(limited: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = limited
    many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(60))
    r = await exchange(app.port, b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n")
    assert r.startswith(b"HTTP/1.1 200 ")
    assert len(backend.requests) == 1


async def test_an_endless_header_is_cut_off_with_431(limited: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = limited
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\nX-Endless: ")
    try:
        for _ in range(200):  # 200 x 1 KiB, never ending the line
            writer.write(b"a" * 1024)
            await writer.drain()
    except ConnectionError:
        pass  # the proxy may have closed already
    r = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    assert r.startswith(b"HTTP/1.1 431 ")
    assert backend.requests == []


async def test_a_declared_body_over_the_limit_is_413_before_forwarding(
    limited: tuple[ProxyApp, RawBackend],
) -> None:
    app, backend = limited
    head = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
    r = await exchange(app.port, head, until_close=True)
    assert r.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in r
    assert b"payload_too_large" in r
    assert backend.requests == []


async def test_a_chunked_body_growing_over_the_limit_is_413(limited: tuple[ProxyApp, RawBackend]) -> None:
    app, _backend = limited
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"a" * 4000
    try:
        for _ in range(4):  # 16,000 bytes > 10,000
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
    except ConnectionError:
        pass
    r = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    # The backend answers only after a whole body, so the proxy's 413 comes first.
    assert r.startswith(b"HTTP/1.1 413 "), r[:60]


async def test_a_body_at_the_limit_passes(limited: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = limited
    body = b"b" * MAX_BODY
    r = await exchange(
        app.port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (MAX_BODY, body)
    )
    assert r.startswith(b"HTTP/1.1 200 ")
    assert backend.requests[0].endswith(body)


async def test_a_stalled_head_is_408_and_closed(limited: tuple[ProxyApp, RawBackend]) -> None:
    app, backend = limited
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
    r = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    assert r.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in r
    assert backend.requests == []


async def test_an_idle_keepalive_connection_gets_no_408(limited: tuple[ProxyApp, RawBackend]) -> None:
    app, _ = limited
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await asyncio.wait_for(read_response(reader), 5)).startswith(b"HTTP/1.1 200 ")
    # Quiet for longer than the head timeout, between requests: still served.
    await asyncio.sleep(0.8)  # the condition under test is "nothing happens for a while"
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await asyncio.wait_for(read_response(reader), 5)).startswith(b"HTTP/1.1 200 ")
    writer.close()


class Ticker:
    """The event loop's longest pause: a task that wakes every millisecond. Besides
    the wall-clock gap it keeps the CPU time the loop spent within one gap, which
    is the stall the loop's own work made, without the other programs of a busy
    machine taking the core away."""

    def __init__(self) -> None:
        self.max_gap_s = 0.0
        self.max_busy_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last, last_cpu = loop.time(), time.thread_time()
        while True:
            await asyncio.sleep(0.001)
            now, cpu = loop.time(), time.thread_time()
            self.max_gap_s = max(self.max_gap_s, now - last)
            self.max_busy_s = max(self.max_busy_s, cpu - last_cpu)
            last, last_cpu = now, cpu

    def __enter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def endless_header(_request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Endless: ")
    try:
        for _ in range(20_000):  # 20 MB, in 1 KiB reads, unless the proxy hangs up first
            writer.write(b"a" * 1024)
            await writer.drain()
    except ConnectionError:
        pass
    return False


async def test_an_endless_response_header_is_502_without_stalling_the_loop(
    limited: tuple[ProxyApp, RawBackend],
) -> None:
    app, backend = limited
    backend.routes[b"/endless"] = endless_header
    with Ticker() as ticker:
        for _ in range(10):
            r = await exchange(app.port, b"GET /endless HTTP/1.1\r\nHost: h\r\n\r\n")
            assert r.startswith(b"HTTP/1.1 502 ") and b"larger than 65536 bytes" in r
            assert b"X-Endless" not in r
    # At most 50 ms of the loop's own work between two ticks (unbounded, it was
    # seconds). The bound is loose on purpose: on a shared 2-core machine under load
    # the same bounded work measured 10-16 ms of thread CPU, so 10 ms failed often.
    # The wall-clock gap also holds whatever else the machine ran.
    assert ticker.max_busy_s < 0.05, ticker.max_busy_s
    print(
        f"endless response header: longest loop stall {ticker.max_busy_s * 1000:.1f} ms of CPU,"
        f" {ticker.max_gap_s * 1000:.1f} ms wall clock"
    )


async def test_a_response_head_just_under_the_limit_passes_in_pieces(
    limited: tuple[ProxyApp, RawBackend],
) -> None:
    app, backend = limited

    async def big_head(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\nok"
        for i in range(0, len(head), 1000):
            writer.write(head[i : i + 1000])
            await writer.drain()
        return True

    backend.routes[b"/big"] = big_head
    r = await exchange(app.port, b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 200 ") and r.endswith(b"\r\n\r\nok")
    assert b"X-Big: " + b"a" * 60_000 + b"\r\n" in r
