"""A tiny, fast HTTP/1.1 backend: one precomputed response to every request.

It must not be the bottleneck of the benchmark, so it does as little as
possible: httptools parses, the response bytes are built once, uvloop runs the
loop. Every request gets 200 and the body, whatever its method or path, so a
health check from the proxy also passes; HEAD gets the head only, because a
body there would desynchronise a keep-alive connection.

    python -m bench.backend --port 8081 --body "hello from v1"
    python -m bench.backend --fd 5 --body "hello from v1"   # an inherited listening socket
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from typing import cast

import httptools
import uvloop

# create_server listens again with its own backlog (default 100), even on a socket passed in; a
# short queue drops the SYNs of a front that churns upstream connections (1 s retransmits).
BACKLOG = 4096
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def build_response(body: bytes, *, keep_alive: bool, head: bool = False) -> bytes:
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: "
        + connection
        + b"\r\n\r\n"
        + (b"" if head else body)
    )


class Responses:
    """The four variants, built once per process."""

    __slots__ = ("close", "head_close", "head_keep", "keep")

    def __init__(self, body: bytes) -> None:
        self.keep = build_response(body, keep_alive=True)
        self.close = build_response(body, keep_alive=False)
        self.head_keep = build_response(body, keep_alive=True, head=True)
        self.head_close = build_response(body, keep_alive=False, head=True)


class BackendProtocol(asyncio.Protocol):
    """One client connection; answers once per parsed request, so pipelining works."""

    __slots__ = ("_closed", "_parser", "_responses", "_transport")

    def __init__(self, responses: Responses) -> None:
        self._responses = responses
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            if self._transport is not None and not self._closed:
                self._transport.write(BAD_REQUEST)
            self._close()

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport is None or self._closed:
            return
        keep = self._parser.should_keep_alive()
        r = self._responses
        if self._parser.get_method() == b"HEAD":
            transport.write(r.head_keep if keep else r.head_close)
        else:
            transport.write(r.keep if keep else r.close)
        if not keep:
            self._close()

    def _close(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()


async def serve(sock: socket.socket, body: bytes) -> None:
    responses = Responses(body)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: BackendProtocol(responses), sock=sock, backlog=BACKLOG)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backend", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="bind 127.0.0.1:PORT")
    where.add_argument("--fd", type=int, help="serve an inherited, already listening socket")
    parser.add_argument("--body", default="hello from v1", help="response body (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
    else:
        sock = socket.create_server(("127.0.0.1", args.port), backlog=BACKLOG)
    sock.setblocking(False)
    uvloop.run(serve(sock, args.body.encode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
