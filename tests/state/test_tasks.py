"""stop_tasks: a cancel that a task swallows is repeated until the task ends."""

from __future__ import annotations

import asyncio

from state.tasks import stop_tasks


async def test_a_task_that_swallows_cancels_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                # What asyncio.wait_for does on 3.11 when the inner call completes as the cancel lands.
                swallowed += 1
                if swallowed >= 3:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await stop_tasks([task], timeout_s=5)
    assert task.cancelled()
    assert swallowed == 3


async def test_gives_up_at_the_deadline_and_says_so() -> None:
    release = asyncio.Event()

    async def immortal() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immortal())
    await asyncio.sleep(0)
    assert not await stop_tasks([task, None], timeout_s=0.2)
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)


async def test_finished_and_failed_tasks_are_collected() -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(boom())
    ok = asyncio.create_task(asyncio.sleep(0))
    await asyncio.wait({failed, ok})
    assert await stop_tasks([failed, ok], timeout_s=1)
