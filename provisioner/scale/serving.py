"""A new server serves as soon as it answers healthy, while its Ansible run goes on.

What a run does after the app has started (the monitor: on a base image its code and its
virtualenv, a third of the run) is not needed to serve. So the provisioner polls the
new server's health from the run's start and puts it in its pool at the first healthy
answer. The app answers only on the release the run chose: a run starts it on its live
port once that release is live (from an image, the adopted one when it is the pool's;
otherwise the release it built and checked on the side port). A run that fails after
that still fails the server, which is drained out of the pool and destroyed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from state.tasks import stop_tasks

# How long a cancelled run may take to end: ansible-runner's cancel, then its leftovers
# (provisioner/configure.py, end_leftovers: 10 s at most).
STOP_S = 60.0


async def configure_and_serve(
    configure: Coroutine[Any, Any, object],
    check: Callable[[float], Coroutine[Any, Any, float]],
    register: Callable[[], Awaitable[object]],
    step: Callable[[str], Awaitable[None]],
    timings: dict[str, float],
    *,
    health_s: float,
    run_s: float,
) -> None:
    """Run `configure`, `register` the server at the first healthy `check`, and note in
    `timings` the seconds of each, counted from the run's start: configure (the run),
    health (its first healthy answer, often before the run ends), register (in its pool:
    serving; noted once it is, so a clean-up knows to drain it). `step(name)` is awaited
    as the record's step changes: configure, health if the run ended first, register, and
    configure again while the run goes on."""
    started = time.monotonic()
    timings["configure"] = 0.0  # first in the record's order, noted when the run ends
    run = asyncio.create_task(configure)
    try:
        await step("configure")
        await healthy_during(run, check, health_s=health_s, run_s=run_s, ended=lambda: step("health"))
        timings["health"] = time.monotonic() - started
        await step("register")
        await register()
        timings["register"] = time.monotonic() - started - timings["health"]
        if not run.done():
            await step("configure")
        await run
        timings["configure"] = time.monotonic() - started
    finally:
        await stop(run)


async def healthy_during(
    run: asyncio.Task[Any],
    check: Callable[[float], Coroutine[Any, Any, float]],
    *,
    health_s: float,
    run_s: float,
    ended: Callable[[], Awaitable[None]],
) -> None:
    """Return once `check(timeout_s)` found the server healthy.

    While `run` goes on, the check polls with the run's own deadline (`run_s`); once the
    run has ended, it gets `health_s` more, as when nothing overlapped (and `ended` is
    awaited first: the record then names the health step). If the run fails first, its
    error is raised and the check stopped.
    """
    poll = asyncio.create_task(check(run_s + health_s))
    try:
        await asyncio.wait({poll, run}, return_when=asyncio.FIRST_COMPLETED)
        if run.done():
            run.result()  # a failed run is the configure step's failure, whatever the check says
        if not poll.done():  # the run ended well, the server not yet healthy
            await stop(poll)
            await ended()
            await check(health_s)
            return
        poll.result()
    finally:
        await stop(poll)


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel `task` if it is still going, and wait until it has ended (state.tasks, the
    one way tasks are stopped; a run's own cancel ends ansible-playbook and what it left)."""
    if not task.done():
        await stop_tasks([task], timeout_s=STOP_S)
