"""What every client connection shares: the snapshot, limits, pools and counters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from proxy.balancer import Balancer
from proxy.stats import Stats
from proxy.upstream import UpstreamPool
from state import Snapshot

if TYPE_CHECKING:
    from proxy.client import ClientConnection
    from proxy.exchange import Exchange

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
BUFFER_HIGH_BYTES = 256 * 1024
VIA = b"1.1 switchyard"


class SnapshotSource(Protocol):
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class LocalReply:
    status: int
    body: bytes


# (exchange) -> reply; used for the public control URLs such as /disable/1
ControlHandler = Callable[["Exchange"], Awaitable[LocalReply]]


@dataclass(slots=True)
class Limits:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    keepalive_timeout_s: float = 75.0
    allow_override: bool = True
    bucket_cookie_max_age_s: int = 30 * 24 * 3600
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 1024**3


class ProxyContext:
    """What every connection shares: the snapshot, the pools and the counters."""

    def __init__(
        self,
        state: SnapshotSource,
        limits: Limits,
        control: ControlHandler | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.state = state
        self.limits = limits
        self.control = control
        self.rng = rng or random.Random()
        self.balancer = Balancer(self.rng)
        self.upstreams = UpstreamPool(connect_timeout_s=limits.connect_timeout_s, max_idle_per_backend=256)
        self.stats = Stats()
        self.connections: set[ClientConnection] = set()
        self.no_connections = asyncio.Event()
        self.no_connections.set()
        self.draining = False

    async def sweep_forever(self) -> None:
        limits = self.limits
        interval = min(
            1.0, limits.read_timeout_s / 4, limits.keepalive_timeout_s / 4, limits.header_timeout_s / 4
        )
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in list(self.connections):
                conn.sweep(now)
