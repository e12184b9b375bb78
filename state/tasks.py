"""Ending background tasks that talk to Redis.

On Python 3.11 a single `cancel()` can be lost: redis-py sends commands under
`asyncio.wait_for`, which returns the result and drops a cancel that lands as
the send completes, so the task carries on looping. Every program that stops a
Redis-bound task goes through `stop_tasks`, which cancels again until the task
has really ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

log = logging.getLogger("state")


async def stop_tasks(tasks: Iterable[asyncio.Task[object] | None], timeout_s: float) -> bool:
    """Cancel `tasks` until each has ended, for at most `timeout_s`; True if all did."""
    pending: set[asyncio.Task[object]] = {t for t in tasks if t is not None}
    finished: list[asyncio.Task[object]] = [t for t in pending if t.done()]
    pending -= set(finished)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        done, pending = await asyncio.wait(pending, timeout=min(0.05, left))
        finished.extend(done)
    for task in finished:
        if not task.cancelled():
            with contextlib.suppress(asyncio.CancelledError):
                exc = task.exception()
                if exc is not None:
                    log.error("task %s had failed: %r", task.get_name(), exc)
    for task in pending:
        log.error("task %s did not end within %.1fs of being cancelled", task.get_name(), timeout_s)
    return not pending
