"""Raw HTTP/1.1 on sockets, for tests where every byte is ours: a backend whose
answers are written by hand, and a client that reads one response."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # -> keep the connection open


class RawBackend:
    """A backend whose answer per path is written by hand, to produce any framing."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self.routes: dict[bytes, Reply] = {}
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.writers:
                writer.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                chunked = False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    if name.lower() == b"transfer-encoding":
                        chunked = True
                body = await reader.readexactly(length) if length else b""
                if chunked:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        data = await reader.readexactly(size + 2)
                        body += data[:-2]
                        if size == 0:
                            break
                self.requests.append(head + body)
                path = head.split(b" ")[1].split(b"?")[0]
                reply = self.routes.get(path, ok)
                if not await reply(head + body, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


async def ok(request: bytes, w: asyncio.StreamWriter) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Seen-Bytes: %d\r\n\r\nok" % len(request))
    return True


async def exchange(port: int, data: bytes, *, until_close: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        if until_close:
            return await asyncio.wait_for(reader.read(-1), 5)
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    headers = headers_of(head)
    if head_only or head.split(b" ")[1] in (b"204", b"304"):
        return head
    if b"content-length" in headers:
        return head + await reader.readexactly(int(headers[b"content-length"]))
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            body += line
            size = int(line.strip(), 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return head + body
    return head + await reader.read(-1)


def headers_of(head: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            name, _, value = line.partition(b":")
            out[name.strip().lower()] = value.strip()
    return out
