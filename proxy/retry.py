"""The retry budget: retries may be at most a fixed share of requests.

A token bucket in the manner of Finagle's RetryBudget: every request deposits
`ratio` of a token and a retry spends a whole one, so over any stretch retries
stay below `ratio` of requests (plus the small `cap` saved from a quiet spell).
A backend outage then costs at most 20% extra load, never a retry storm.
"""

from __future__ import annotations


class RetryBudget:
    __slots__ = ("cap", "ratio", "retries", "tokens")

    def __init__(self, ratio: float = 0.2, cap: float = 20.0) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError(f"retry ratio {ratio!r} must be between 0 and 1")
        self.ratio = ratio
        self.cap = cap
        self.tokens = 0.0
        self.retries = 0

    def deposit(self) -> None:
        """Count one request."""
        tokens = self.tokens + self.ratio
        self.tokens = tokens if tokens < self.cap else self.cap

    def withdraw(self) -> bool:
        """Spend a token on a retry; False when the budget is exhausted."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        self.retries += 1
        return True
