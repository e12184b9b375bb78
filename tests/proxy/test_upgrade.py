"""Upgrade requests (WebSocket) are tunnelled both ways after the upstream's 101."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from proxy.app import ProxyApp
from state import StateStore
from tests.support.proxy import proxy_config
from tests.support.wait import async_wait_until


class WsBackend:
    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.closed_by_client = asyncio.Event()
        self.upgrade_headers: dict[str, str] = {}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self.ws)
        app.router.add_get("/refuse", self.refuse)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self.runner, sock).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.upgrade_headers = dict(request.headers)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello from the backend")  # unasked: server push
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "bye":
                    await ws.close()
                else:
                    await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        self.closed_by_client.set()
        return ws

    async def refuse(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "no websockets here"}, status=400)


@pytest.fixture
async def ws_proxy(store: StateStore, redis_url: str) -> AsyncIterator[tuple[ProxyApp, WsBackend]]:
    backend = WsBackend()
    await backend.start()
    await store.add_backend("production", backend.url)
    app = ProxyApp(proxy_config(redis_url))
    await app.start()
    await async_wait_until(lambda: bool(app.snapshots.snapshot.production), 5, "the pool")
    yield app, backend
    await app.stop()
    await backend.stop()


async def test_websocket_messages_flow_both_ways(ws_proxy: tuple[ProxyApp, WsBackend]) -> None:
    app, backend = ws_proxy
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{app.port}/ws") as ws,
    ):
        assert (await ws.receive_str(timeout=5)) == "hello from the backend"
        for i in range(50):
            await ws.send_str(f"m{i}")
            assert (await ws.receive_str(timeout=5)) == f"echo:m{i}"
        big = bytes(range(256)) * 4096  # 1 MiB in one frame: exercises backpressure
        await ws.send_bytes(big)
        assert (await ws.receive_bytes(timeout=10)) == big[::-1]
        await ws.close()
    await asyncio.wait_for(backend.closed_by_client.wait(), 5)
    # The upstream saw a proper upgrade request, with the proxy's headers added.
    assert backend.upgrade_headers["Upgrade"].lower() == "websocket"
    assert "upgrade" in backend.upgrade_headers["Connection"].lower()
    assert backend.upgrade_headers["X-Forwarded-For"] == "127.0.0.1"


async def test_the_upstream_closing_ends_the_client_side(ws_proxy: tuple[ProxyApp, WsBackend]) -> None:
    app, _ = ws_proxy
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{app.port}/ws") as ws,
    ):
        await ws.receive_str(timeout=5)
        await ws.send_str("bye")
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await async_wait_until(lambda: not app.ctx.connections, 5, "the tunnel's client side to close")


async def test_a_refused_upgrade_is_relayed_and_the_connection_closed(
    ws_proxy: tuple[ProxyApp, WsBackend],
) -> None:
    app, _ = ws_proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    writer.write(
        b"GET /refuse HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    r = await asyncio.wait_for(reader.read(-1), 5)  # read to the close
    writer.close()
    assert r.startswith(b"HTTP/1.1 400 ")
    assert b"no websockets here" in r
    assert b"Connection: close" in r


async def test_any_upgrade_is_a_raw_tunnel(store: StateStore, redis_url: str) -> None:
    """Not only WebSocket: after a 101, bytes pass untouched, whatever they are."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x-raw\r\n\r\nREADY"
        )
        while data := await reader.read(65536):
            writer.write(data.upper())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    await store.add_backend("production", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    app = ProxyApp(proxy_config(redis_url))
    await app.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        # Tunnel bytes sent with the request, before the 101, must not be lost.
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x-raw\r\n\r\nearly ")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Upgrade: x-raw" in head
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"READY"
        assert await asyncio.wait_for(reader.readexactly(6), 5) == b"EARLY "
        writer.write(b"not http at all \x00\xff\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(22), 5) == b"NOT HTTP AT ALL \x00\xff\r\n\r\n"
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(-1), 5) == b""
        writer.close()
    finally:
        await app.stop()
        server.close()
        await server.wait_closed()
