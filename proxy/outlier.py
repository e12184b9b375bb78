"""Outlier ejection: which backends to leave out for a while (pure, no I/O).

After `consecutive` failures in a row (a refused or timed-out connection, a
reset before the response, a 5xx), a backend is ejected for a period that
doubles with each ejection (capped), as Envoy does. The production pool never
loses more than half its backends to ejection, so a shared cause (an
overloaded database, a bad deploy) cannot empty it; staging may lose all of
them, because production takes its traffic then. A backend comes back when
its period ends, or earlier when an active health check passes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class BackendHealth:
    failures: int = 0  # consecutive
    ejected_until: float = 0.0
    ejections: int = 0  # how often in a row it was ejected: drives the growing period
    returned_at: float = 0.0


class Outliers:
    def __init__(
        self,
        *,
        consecutive: int = 5,
        base_ejection_s: float = 10.0,
        max_ejection_s: float = 300.0,
        max_ejected_share: float = 0.5,
    ) -> None:
        self.consecutive = consecutive
        self.base_ejection_s = base_ejection_s
        self.max_ejection_s = max_ejection_s
        self.max_ejected_share = max_ejected_share
        self.health: dict[str, BackendHealth] = {}
        self.ejected: dict[str, float] = {}  # backend -> until
        self.generation = 0  # bumped whenever the ejected set changes
        self.total_ejections = 0

    def success(self, backend: str) -> None:
        h = self.health.get(backend)
        if h is not None and h.failures:
            h.failures = 0

    def failure(self, backend: str, pool: tuple[str, ...], now: float, *, has_fallback: bool) -> bool:
        """Record a failure of `backend` (a member of `pool`); True if it was ejected now."""
        h = self.health.get(backend)
        if h is None:
            h = self.health[backend] = BackendHealth()
        h.failures += 1
        if h.failures < self.consecutive or backend in self.ejected:
            return False
        if not has_fallback:
            out = sum(1 for b in pool if b in self.ejected and b != backend)
            if out + 1 > int(len(pool) * self.max_ejected_share):
                return False
        if now - h.returned_at > self.max_ejection_s:
            h.ejections = 0  # healthy long enough since the last time: start over
        period = min(self.max_ejection_s, self.base_ejection_s * 2**h.ejections)
        h.ejections += 1
        h.ejected_until = now + period
        h.failures = 0
        self.ejected[backend] = h.ejected_until
        self.generation += 1
        self.total_ejections += 1
        return True

    def restore(self, backend: str, now: float) -> None:
        """Bring `backend` back (its period ended, or a health check passed)."""
        if self.ejected.pop(backend, None) is not None:
            h = self.health[backend]
            h.returned_at = now
            h.failures = 0
            self.generation += 1

    def hold(self, backend: str, until: float) -> None:
        """Keep an ejected backend out at least until `until` (its health check fails)."""
        if backend in self.ejected and self.ejected[backend] < until:
            self.ejected[backend] = self.health[backend].ejected_until = until

    def expire(self, now: float) -> None:
        for backend, until in list(self.ejected.items()):
            if until <= now:
                self.restore(backend, now)

    def next_expiry(self) -> float:
        return min(self.ejected.values(), default=float("inf"))

    def healthy(self, pool: tuple[str, ...]) -> tuple[str, ...]:
        ejected = self.ejected
        if not ejected:
            return pool
        return tuple(b for b in pool if b not in ejected)

    def forget(self, keep: set[str]) -> None:
        """Drop what is known about backends no longer in any pool."""
        for backend in [b for b in self.health if b not in keep]:
            del self.health[backend]
            if self.ejected.pop(backend, None) is not None:
                self.generation += 1
