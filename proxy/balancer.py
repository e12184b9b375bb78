"""Least outstanding requests within a pool, ties broken at random."""

from __future__ import annotations

import random
from collections import defaultdict


class Balancer:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self.outstanding: defaultdict[str, int] = defaultdict(int)

    def pick(self, backends: tuple[str, ...]) -> str:
        if len(backends) == 1:
            return backends[0]
        load = self.outstanding
        best = min(load[b] for b in backends)
        tied = [b for b in backends if load[b] == best]
        return tied[0] if len(tied) == 1 else self._rng.choice(tied)

    def acquire(self, backend: str) -> None:
        self.outstanding[backend] += 1

    def release(self, backend: str) -> None:
        left = self.outstanding[backend] - 1
        if left <= 0:
            del self.outstanding[backend]
        else:
            self.outstanding[backend] = left
