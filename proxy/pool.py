"""Idle keep-alive connections per backend, and opening new ones."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from urllib.parse import urlsplit

from proxy.errors import BadGateway, GatewayTimeout
from proxy.upstream import MAX_HEAD_BYTES, UpstreamConnection


class UpstreamPool:
    """Idle keep-alive connections per backend, most recently used first."""

    def __init__(
        self, *, connect_timeout_s: float, max_idle_per_backend: int, max_head_bytes: int = MAX_HEAD_BYTES
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.max_head_bytes = max_head_bytes
        self.max_idle = max_idle_per_backend
        self.idle: defaultdict[str, list[UpstreamConnection]] = defaultdict(list)
        self._addresses: dict[str, tuple[str, int]] = {}

    def take_idle(self, backend: str) -> UpstreamConnection | None:
        idle = self.idle.get(backend)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def connect(self, backend: str) -> UpstreamConnection:
        max_head = self.max_head_bytes
        loop = asyncio.get_running_loop()
        try:
            host, port = self._address(backend)
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(backend, max_head), host, port
                )
        except TimeoutError as exc:
            raise GatewayTimeout(f"connecting to {backend} timed out", backend=backend) from exc
        except OSError as exc:
            raise BadGateway(f"cannot connect to {backend}: {exc.strerror or exc}", backend=backend) from exc
        except Exception as exc:
            # Whatever stops a connect (UnicodeError from IDNA for a bad host label,
            # ValueError for a bad port) is a failed connect: 502, retry, ejection as usual.
            raise BadGateway(f"cannot connect to {backend}: {exc!r}", backend=backend) from exc
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        if conn.closed or not conn.reusable:
            conn.close()
            return
        # An idle connection must notice the backend closing it.
        conn.resume_reading()
        idle = self.idle[conn.backend]
        if len(idle) >= self.max_idle:
            conn.close()
            return
        idle.append(conn)

    def close_all(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()

    def _address(self, backend: str) -> tuple[str, int]:
        addr = self._addresses.get(backend)
        if addr is None:
            parts = urlsplit(backend)
            addr = (parts.hostname or "127.0.0.1", parts.port or 80)
            self._addresses[backend] = addr
        return addr
