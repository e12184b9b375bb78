"""Bodies stream through the proxy: 1 GiB each way in bounded memory, events as
they happen, and backpressure both ways. The proxy runs as its own process so
its memory is measured alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from state import StateStore
from tests.support.proxy import ProxyProcess
from tests.support.wait import async_wait_until

GIB = 1024**3
MIB = 1024**2
PIECE = b"x" * (256 * 1024)
RSS_GROWTH_LIMIT_KIB = 32 * 1024


class StreamBackend:
    """Serves GET /down/<bytes> as one Content-Length body, POST /up by counting
    and discarding, GET /events as server-sent events, one per client ack."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.url = ""
        self.sent = 0
        self.received = 0
        self.writer_buffer: Callable[[], int] = lambda: 0
        self.read_body = asyncio.Event()
        self.read_body.set()
        self.acks: asyncio.Queue[None] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ")[1]
            if target.startswith(b"/down/"):
                await self._down(writer, int(target[6:]))
            elif target == b"/up":
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await self.read_body.wait()
                while self.received < length:
                    data = await reader.read(1024 * 1024)
                    if not data:
                        return
                    self.received += len(data)
                body = b"%d" % self.received
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
            elif target == b"/events":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for i in range(5):
                    event = b"data: event %d\n\n" % i
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                    # The next event only once the client has the previous one: a proxy
                    # that held events back until the end would hang here.
                    await asyncio.wait_for(self.acks.get(), 5)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _down(self, writer: asyncio.StreamWriter, size: int) -> None:
        writer.transport.set_write_buffer_limits(high=MIB)
        self.writer_buffer = writer.transport.get_write_buffer_size
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        left = size
        while left:
            piece = PIECE if left >= len(PIECE) else PIECE[:left]
            writer.write(piece)
            left -= len(piece)
            self.sent += len(piece)
            await writer.drain()


@pytest.fixture
async def streaming(
    store: StateStore, proxy_process: Callable[..., ProxyProcess]
) -> AsyncIterator[tuple[ProxyProcess, StreamBackend]]:
    backend = StreamBackend()
    await backend.start()
    await store.add_backend("production", backend.url)
    proc = await asyncio.to_thread(proxy_process)
    yield proc, backend
    await backend.stop()


async def _open(proc: ProxyProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proc.port, limit=4 * MIB)


async def _drain_body(reader: asyncio.StreamReader, size: int) -> int:
    got = 0
    while got < size:
        data = await reader.read(4 * MIB)
        assert data, f"the body ended early at {got} of {size} bytes"
        got += len(data)
    return got


async def test_a_1_gib_download_streams_in_bounded_memory(
    streaming: tuple[ProxyProcess, StreamBackend],
) -> None:
    proc, _ = streaming
    reader, writer = await _open(proc)
    writer.write(b"GET /down/1024 HTTP/1.1\r\nHost: t\r\n\r\n")  # warm up: buffers, caches
    await reader.readuntil(b"\r\n\r\n")
    await _drain_body(reader, 1024)
    before = proc.rss_kib()
    writer.write(b"GET /down/%d HTTP/1.1\r\nHost: t\r\n\r\n" % GIB)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: %d" % GIB in head
    assert await asyncio.wait_for(_drain_body(reader, GIB), 120) == GIB
    growth = proc.rss_kib("VmHWM") - before
    writer.close()
    print(f"1 GiB download: proxy RSS {before} KiB, peak {before + growth} KiB")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB for a 1 GiB download"


async def test_a_1_gib_upload_streams_in_bounded_memory(
    streaming: tuple[ProxyProcess, StreamBackend],
) -> None:
    proc, backend = streaming
    reader, writer = await _open(proc)
    before = proc.rss_kib()
    writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % GIB)
    left = GIB
    while left:
        writer.write(PIECE)
        left -= len(PIECE)
        await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
    body = await reader.read(64)
    growth = proc.rss_kib("VmHWM") - before
    writer.close()
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"%d" % GIB
    assert backend.received == GIB
    print(f"1 GiB upload: proxy RSS {before} KiB, peak {before + growth} KiB")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB for a 1 GiB upload"


async def test_server_sent_events_arrive_one_by_one(streaming: tuple[ProxyProcess, StreamBackend]) -> None:
    proc, backend = streaming
    reader, writer = await _open(proc)
    writer.write(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"text/event-stream" in head
    for i in range(5):
        size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).strip(), 16)
        event = await reader.readexactly(size + 2)
        assert event == b"data: event %d\n\n\r\n" % i
        backend.acks.put_nowait(None)
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"0\r\n\r\n"
    writer.close()


async def test_a_slow_reader_holds_the_backend_back(streaming: tuple[ProxyProcess, StreamBackend]) -> None:
    proc, backend = streaming
    reader, writer = await _open(proc)
    before = proc.rss_kib()
    size = 512 * MIB
    writer.write(b"GET /down/%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
    # The client reads nothing: the proxy must stop reading the backend, whose
    # own buffer then fills up.
    await async_wait_until(lambda: backend.writer_buffer() >= MIB, 20, "the backend's buffer to fill")
    assert backend.sent < 64 * MIB, f"{backend.sent} bytes left the backend for a client that read none"
    growth = proc.rss_kib() - before
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB while the client read nothing"
    await reader.readuntil(b"\r\n\r\n")
    assert await asyncio.wait_for(_drain_body(reader, size), 60) == size
    writer.close()


async def test_a_slow_backend_holds_the_uploader_back(streaming: tuple[ProxyProcess, StreamBackend]) -> None:
    proc, backend = streaming
    backend.read_body.clear()  # the backend reads nothing yet
    reader, writer = await _open(proc)
    writer.transport.set_write_buffer_limits(high=MIB)
    before = proc.rss_kib()
    size = 256 * MIB
    writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
    pushed = 0
    while writer.transport.get_write_buffer_size() < MIB:
        writer.write(PIECE)
        pushed += len(PIECE)
        await asyncio.sleep(0)  # let the loop move bytes, without waiting for drain
        assert pushed < 64 * MIB, "the proxy kept reading a body its backend did not take"
    growth = proc.rss_kib() - before
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB while the backend read nothing"
    backend.read_body.set()
    while pushed < size:
        writer.write(PIECE)
        pushed += len(PIECE)
        await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert await reader.read(64) == b"%d" % size
    writer.close()
