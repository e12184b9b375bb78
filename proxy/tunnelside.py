"""The tunnel half of `ClientConnection` (a mixin: its state is the connection's).

After a successful Upgrade (a 101), bytes flow raw both ways between the client and
one upstream connection; nothing is parsed any more. Bytes the client sends ahead of
the 101 are held until the tunnel opens.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from proxy.context import Limits
from proxy.upstream import UpstreamConnection


class Tunnelling(Protocol):
    """The client connection as its tunnel side sees it (the mixin's `self`)."""

    transport: asyncio.Transport | None
    closed: bool
    tunnel: UpstreamConnection | None
    tunnel_pending: list[bytes] | None
    tunnel_active: bool
    idle_since: float

    def write(self, data: bytes) -> None: ...
    def resume(self, reason: str) -> None: ...
    def finish(self) -> None: ...


class TunnelSide:
    # mypy takes the methods' assignments for this class's own attributes: say what they are.
    tunnel: UpstreamConnection | None
    tunnel_pending: list[bytes] | None
    tunnel_active: bool
    idle_since: float

    def relay(self: Tunnelling, data: bytes) -> None:
        """Bytes from the far side of the tunnel."""
        self.tunnel_active = True
        self.write(data)

    def finish(self: Tunnelling) -> None:
        """The tunnel's far side ended: close once what is queued is written."""
        self.tunnel = None
        if self.transport is not None and not self.closed:
            self.transport.close()

    def start_tunnel(self: Tunnelling, upstream: UpstreamConnection, first: bytes) -> None:
        """The upstream switched protocols: from now on, relay bytes both ways."""
        self.tunnel = upstream
        self.idle_since = -1.0
        if first:
            self.write(first)
        pending, self.tunnel_pending = self.tunnel_pending, None
        for data in pending or ():
            upstream.write(data)
        self.resume("upgrade")

    def hold_for_tunnel(self: Tunnelling, data: bytes) -> None:
        """Sent ahead of the upstream's 101: kept for the tunnel (a list only then)."""
        if self.tunnel_pending is None:
            self.tunnel_pending = []
        self.tunnel_pending.append(data)

    def sweep_tunnel(self: Tunnelling, tunnel: UpstreamConnection, now: float, limits: Limits) -> None:
        # A tunnel's bytes set a flag, not a timestamp: the sweep reads the clock.
        if self.tunnel_active or self.idle_since < 0:
            self.tunnel_active = False
            self.idle_since = now
        elif now - self.idle_since > limits.tunnel_idle_timeout_s:
            tunnel.finish()
            self.finish()
