"""A bounded load generator for the chaos tests: keep-alive HTTP/1.1 clients on
raw sockets that record every outcome.

It behaves as browsers and HTTP libraries do (RFC 9112, 9.3.1): when a server
closes an idle keep-alive connection just as a request is sent on it, the
request never reached the server, and an idempotent request is sent again on
a new connection. That is counted as a reconnect, not a failure. Anything
else that is not a 2xx answer is a failure, kept with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.support.wait import eventually


class NoAnswer(Exception):
    """The connection ended before any byte of a response."""


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    reconnects: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def summary(self) -> str:
        return (
            f"{self.ok} ok, {len(self.failures)} failed, {self.reconnects} reconnects,"
            f" statuses {dict(self.statuses)}; first failures: {self.failures[:5]}"
        )


class Load:
    def __init__(
        self,
        port: int,
        *,
        concurrency: int = 8,
        path: str = "/",
        max_requests: int = 200_000,
        pause_s: float = 0.0,
    ) -> None:
        self.port = port
        self.concurrency = concurrency
        self.request = b"GET %s HTTP/1.1\r\nHost: load\r\n\r\n" % path.encode()
        self.max_requests = max_requests
        # Between one client's requests: with one client, 1.0 is about one request a second.
        self.pause_s = pause_s
        self.result = LoadResult()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.sent = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.concurrency)]

    async def until(self, requests: int, timeout_s: float = 30.0) -> None:
        """Wait until `requests` more requests have been answered."""
        target = self.result.ok + len(self.result.failures) + requests
        await eventually(
            lambda: self.result.ok + len(self.result.failures) >= target,
            timeout_s,
            f"{requests} more answers",
            interval_s=0.01,
            detail=lambda: f": load stalled: {self.result.summary()}",
        )

    async def stop(self) -> LoadResult:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 30)
        return self.result

    async def _client(self) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        used = 0
        while await self._another():
            self.sent += 1
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
                    used = 0
                try:
                    status, keep = await self._exchange(*conn)
                except NoAnswer:
                    if used == 0:
                        raise
                    # The server closed this idle connection as we reused it: resend once.
                    self.result.reconnects += 1
                    conn[1].close()
                    conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
                    used = 0
                    status, keep = await self._exchange(*conn)
                used += 1
                self.result.statuses[status] += 1
                if not 200 <= status < 300:
                    self.result.failures.append(f"status {status}")
                if not keep:
                    conn[1].close()
                    conn = None
            except (OSError, NoAnswer, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                self.result.failures.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()
            with contextlib.suppress(Exception):
                await conn[1].wait_closed()

    async def _another(self) -> bool:
        """Whether to send another request, after `pause_s` (cut short by a stop)."""
        if self.pause_s and self.sent and not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.pause_s)
        return not self._stop.is_set() and self.sent < self.max_requests

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, bool]:
        try:
            writer.write(self.request)
            first = await asyncio.wait_for(reader.readline(), 10)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise NoAnswer(str(exc)) from exc
        if not first:
            raise NoAnswer("closed before a response")
        head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(first.split(b" ", 2)[1])
        length = 0
        keep = True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif name == b"transfer-encoding":
                raise ValueError("chunked answers are not expected from the test backends")
        if length:
            await asyncio.wait_for(reader.readexactly(length), 10)
        return status, keep
