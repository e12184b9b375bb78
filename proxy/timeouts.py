"""The timeouts of `ClientConnection` (a mixin: its state is the connection's).

One sweep a few times a second enforces them for every connection, which is far
cheaper than a timer armed and cancelled per request.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from proxy.context import Limits, ProxyContext
from proxy.errors import ProxyError, RequestTimeout
from proxy.exchange import Exchange
from proxy.upstream import UpstreamConnection


class Timed(Protocol):
    """The client connection as its sweep sees it (the mixin's `self`)."""

    @property
    def ctx(self) -> ProxyContext: ...
    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def current(self) -> Exchange | None: ...
    @property
    def tunnel(self) -> UpstreamConnection | None: ...
    @property
    def closing(self) -> bool: ...

    head_started: float | None
    idle_since: float
    body_seen: tuple[Exchange, int] | None

    def sweep_tunnel(self, tunnel: UpstreamConnection, now: float, limits: Limits) -> None: ...
    def _protocol_error(self, exc: ProxyError) -> None: ...


class TimeoutSide:
    # mypy takes the methods' assignments for this class's own attributes: say what they are.
    head_started: float | None
    idle_since: float
    body_seen: tuple[Exchange, int] | None

    def sweep(self: Timed, now: float) -> None:
        """Enforce the timeouts (the sweep's `now`)."""
        current = self.current
        limits = self.ctx.limits
        tunnel = self.tunnel
        if tunnel is not None:
            self.sweep_tunnel(tunnel, now, limits)
            return
        if self.closing:
            # Lingering (see `end`); a connection being closed anyway is closed again, harmlessly.
            if self.idle_since < 0:
                self.idle_since = now
            elif now - self.idle_since > limits.lingering_timeout_s and self.transport is not None:
                self.transport.close()
            return
        if current is None:
            # Timestamps are taken here, a few times a second, rather than on every
            # request: the limits are then up to one sweep interval late, and the
            # data path makes no clock call for them.
            started = self.head_started
            if started is not None:
                if started < 0:
                    self.head_started = now
                elif now - started > limits.header_timeout_s:
                    self._protocol_error(RequestTimeout("the request head did not arrive in time"))
            elif self.idle_since < 0:
                self.idle_since = now
            elif now - self.idle_since > limits.keepalive_timeout_s and self.transport is not None:
                self.transport.close()
        elif not current.request_done:
            if current.response_started:
                return
            # The client is still sending its body: its silence is its own (408),
            # never the backend's (the response timer starts when the body is done).
            seen = (current, current.received)
            if self.body_seen != seen:
                self.body_seen, self.idle_since = seen, now
            elif now - self.idle_since > limits.read_timeout_s:
                self._protocol_error(RequestTimeout("the request body stalled"))
        elif (
            current.head_sent
            and not current.response_started
            and current.upstream is not None
            and now - current.sent_at > limits.read_timeout_s
        ):
            current.first_byte_timeout()
