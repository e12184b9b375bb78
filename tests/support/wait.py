"""Waiting on a condition against a deadline: the one polling loop the tests use.

`eventually` polls from a coroutine and takes a plain or an async predicate;
`wait_until` is its blocking twin for synchronous code (fixtures, subprocess
tests). Both raise AssertionError naming what they waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

# Truthy means done; an async predicate's result is awaited first.
Predicate = Callable[[], object]
Check = Callable[[], None]


class Deadline:
    """`timeout_s` from now; `expired()` once it has passed, `fail()` to say so."""

    def __init__(self, timeout_s: float, what: str) -> None:
        self.timeout_s = timeout_s
        self.what = what
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return self.elapsed() >= self.timeout_s

    def fail(self, detail: str = "") -> AssertionError:
        return AssertionError(f"timed out after {self.timeout_s}s waiting for {self.what}{detail}")


async def eventually(
    predicate: Predicate,
    timeout_s: float = 10.0,
    what: str = "condition",
    *,
    interval_s: float = 0.001,
    alive: Check | None = None,
    detail: Callable[[], str] | None = None,
) -> float:
    """Poll `predicate` on the loop until it is true; return the seconds it took.

    `alive` is called between polls and raises to end the wait early (a process
    the condition depends on has died); `detail` adds context to the timeout.
    """
    deadline = Deadline(timeout_s, what)
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return deadline.elapsed()
        if alive is not None:
            alive()
        if deadline.expired():
            raise deadline.fail(detail() if detail is not None else "")
        await asyncio.sleep(interval_s)


def wait_until(
    predicate: Callable[[], object],
    timeout_s: float = 10.0,
    what: str = "condition",
    *,
    interval_s: float = 0.01,
    alive: Check | None = None,
    detail: Callable[[], str] | None = None,
) -> float:
    """`eventually` for code that may block: the same loop, sleeping between polls."""
    deadline = Deadline(timeout_s, what)
    while True:
        if predicate():
            return deadline.elapsed()
        if alive is not None:
            alive()
        if deadline.expired():
            raise deadline.fail(detail() if detail is not None else "")
        time.sleep(interval_s)


# The name most proxy tests already wait with.
async_wait_until = eventually
