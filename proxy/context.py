"""What every client connection shares: the snapshot, limits, pools and counters."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from proxy.analysis import VersionCounter
from proxy.balancer import Balancer
from proxy.config import ProxyConfig
from proxy.logs import AccessLog
from proxy.outlier import Outliers
from proxy.pool import UpstreamPool
from proxy.retry import RetryBudget
from proxy.stats import Stats
from state import Snapshot

log = logging.getLogger("proxy")


class SnapshotSource(Protocol):
    snapshot: Snapshot


class Connection(Protocol):
    """What the context (and the app, when it stops) needs of a client connection."""

    def sweep(self, now: float) -> None: ...
    def close_if_idle(self) -> bool: ...
    def abort(self) -> None: ...


class ControlRequest(Protocol):
    """What the handler of a control URL reads of the request."""

    @property
    def method(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...
    @property
    def headers(self) -> list[tuple[bytes, bytes, bytes]]: ...
    @property
    def peer(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LocalReply:
    status: int
    body: bytes


# (request) -> reply; used for the public control URLs such as /disable/1
ControlHandler = Callable[[ControlRequest], Awaitable[LocalReply]]


_DEFAULT = ProxyConfig()
# Limits' names that differ from ProxyConfig's.
_CONFIG_NAME = {"allow_override": "canary_override"}


@dataclass(slots=True)
class Limits:
    """The settings the request path reads, flat in slots; each default is ProxyConfig's."""

    connect_timeout_s: float = _DEFAULT.connect_timeout_s
    read_timeout_s: float = _DEFAULT.read_timeout_s
    keepalive_timeout_s: float = _DEFAULT.keepalive_timeout_s
    allow_override: bool = _DEFAULT.canary_override
    bucket_cookie_max_age_s: int = _DEFAULT.bucket_cookie_max_age_s
    header_timeout_s: float = _DEFAULT.header_timeout_s
    lingering_timeout_s: float = _DEFAULT.lingering_timeout_s
    max_header_bytes: int = _DEFAULT.max_header_bytes
    max_response_header_bytes: int = _DEFAULT.max_response_header_bytes
    tunnel_idle_timeout_s: float = _DEFAULT.tunnel_idle_timeout_s
    trusted_proxies: tuple[str, ...] = _DEFAULT.trusted_proxies
    max_body_bytes: int = _DEFAULT.max_body_bytes
    retry_budget_ratio: float = _DEFAULT.retry_budget_ratio
    outlier_consecutive_failures: int = _DEFAULT.outlier_consecutive_failures
    outlier_base_ejection_s: float = _DEFAULT.outlier_base_ejection_s
    outlier_max_ejection_s: float = _DEFAULT.outlier_max_ejection_s
    version_stats: bool = _DEFAULT.version_stats
    preview_domain: str = _DEFAULT.preview_domain

    @classmethod
    def from_config(cls, config: ProxyConfig) -> Limits:
        names = (f.name for f in dataclasses.fields(cls))
        return cls(**{name: getattr(config, _CONFIG_NAME.get(name, name)) for name in names})


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
        self.upstreams = UpstreamPool(
            connect_timeout_s=limits.connect_timeout_s,
            max_idle_per_backend=256,
            max_head_bytes=limits.max_response_header_bytes,
        )
        # What a preview's Host ends with (proxy/previews.py), lower case.
        self.preview_suffix = b"." + limits.preview_domain.lower().encode("ascii")
        self._trusted = tuple(ipaddress.ip_network(n) for n in limits.trusted_proxies)
        self.retry_budget = RetryBudget(limits.retry_budget_ratio)
        self.outliers = Outliers(
            consecutive=limits.outlier_consecutive_failures,
            base_ejection_s=limits.outlier_base_ejection_s,
            max_ejection_s=limits.outlier_max_ejection_s,
        )
        self.stats = Stats(self.outliers, self.retry_budget)
        # Empty when off: the data path then finds no counter for any version.
        self.version_counters: dict[str, VersionCounter] = (
            {"production": VersionCounter(), "staging": VersionCounter()} if limits.version_stats else {}
        )
        self._view_of: Snapshot | None = None
        self._view_generation = -1
        self._view = Snapshot()
        self.loop = asyncio.get_running_loop()
        self.access_log: AccessLog | None = None
        self.connections: set[Connection] = set()
        self.no_connections = asyncio.Event()
        self.no_connections.set()
        self.draining = False

    def view(self) -> Snapshot:
        """The snapshot to route by: the state's, without ejected backends."""
        snap = self.state.snapshot
        outliers = self.outliers
        if not outliers.ejected:
            return snap
        now = self.loop.time()
        if now >= outliers.next_expiry():
            outliers.expire(now)
        if snap is not self._view_of or outliers.generation != self._view_generation:
            self._view_of = snap
            self._view_generation = outliers.generation
            self._view = dataclasses.replace(
                snap, production=outliers.healthy(snap.production), staging=outliers.healthy(snap.staging)
            )
        return self._view

    def trusts(self, peer: bytes) -> bool:
        """Whether `peer` is a proxy whose forwarding fields are kept (`trusted_proxies`)."""
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(peer.decode("latin-1"))
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def upstream_failed(self, backend: str, version: str) -> None:
        snap = self.state.snapshot
        pool = snap.staging if version == "staging" else snap.production
        if backend not in pool:
            return  # removed from the pool meanwhile: nothing to eject
        if self.outliers.failure(backend, pool, self.loop.time(), has_fallback=version == "staging"):
            log.warning(
                "backend ejected backend=%s pool=%s for_s=%.0f",
                backend,
                version,
                self.outliers.ejected[backend] - self.loop.time(),
            )

    async def sweep_forever(self) -> None:
        limits = self.limits
        interval = min(
            1.0,
            limits.read_timeout_s / 4,
            limits.keepalive_timeout_s / 4,
            limits.header_timeout_s / 4,
            limits.lingering_timeout_s / 4,
            limits.tunnel_idle_timeout_s / 4,
        )
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in list(self.connections):
                conn.sweep(now)
