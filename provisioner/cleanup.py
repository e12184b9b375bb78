"""Clean-ups that run to their end: a half-done one is how servers and releases leak.

Used by scaling (destroying a server that failed a step) and by deploying (putting a
server back in its pool, discarding prepared releases) alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish(work: Awaitable[T]) -> T:
    """Run `work` to its end even if the caller is cancelled meanwhile (then re-raise the
    cancel): a clean-up stopped half-way is how servers leak."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved; the cancel is what the caller hears about
        raise asyncio.CancelledError
    return task.result()
