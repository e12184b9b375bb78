"""A stand-in backend: a real aiohttp server that records what reached it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Backend:
    """A real aiohttp server that says who it is and records what it received."""

    name: str
    url: str = ""
    hits: int = 0
    seen: list[dict[str, object]] = field(default_factory=list)
    server: TestServer | None = None
    delay_s: float = 0.0  # added before every answer: a slower version
    fail_every: int = 0  # every Nth request answers 500 (20: five points of 5xx)
    fail_first: int = 0  # the first N requests answer 500 (a webhook that is down, then up)
    keep_bodies: bool = False  # keep each request body in `bodies` (a webhook receiver)
    bodies: list[bytes] = field(default_factory=list)
    first_hit_at: float = 0.0  # wall-clock times of the first and the latest request
    last_hit_at: float = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def served_by(self, server: TestServer) -> Backend:
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}"
        return self

    async def start(self) -> None:
        """Serve on a free port without pytest-aiohttp (for a test that starts its own)."""
        server = TestServer(self.app(), host="127.0.0.1")
        await server.start_server(access_log=None)
        self.served_by(server)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        nth = self.hits  # this request's number: `hits` moves on while it waits
        self.last_hit_at = time.time()
        self.first_hit_at = self.first_hit_at or self.last_hit_at
        body = await request.read()
        record = {
            "backend": self.name,
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_len": len(body),
        }
        self.seen.append(record)
        if self.keep_bodies:
            self.bodies.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        failing = nth <= self.fail_first or (self.fail_every and nth % self.fail_every == 0)
        return web.json_response(record, status=500 if failing else 200, headers={"X-Backend": self.name})
