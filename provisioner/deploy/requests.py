"""Deploy requests from finished rollouts: the proxy's controller asks, in Redis, for the
staging release's sha to go to production; the worker deploys it the way a push to main
would (Deployer.deploy: one server at a time, drained, health-checked) and stores the
result, which the controller waits for before it puts the weight back.

A request a dead worker left unacknowledged is claimed again after `reclaim_idle_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from state import DeployRecord, StateError
from state.model import PoolName
from state.rollouts import DeployRequest, DeployRequests

log = logging.getLogger("provisioner")
Deploy = Callable[[PoolName, str, Path], Awaitable[DeployRecord]]
ERROR_BACKOFF_S = 2.0


async def serve_deploy_requests(
    requests: DeployRequests, deploy: Deploy, repo: Path, consumer: str, stop: asyncio.Event
) -> None:
    """Serve until `stop` is set; a deploy under way is finished first (it drains servers)."""
    while not stop.is_set():
        try:
            await requests.ensure_group()
            for req in await requests.claim(consumer, block_ms=1000):
                await serve_one(requests, deploy, repo, req)
        except StateError as exc:
            log.warning("rollout deploy requests unreadable: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ERROR_BACKOFF_S)


async def serve_one(requests: DeployRequests, deploy: Deploy, repo: Path, req: DeployRequest) -> None:
    if len(req.sha) != 40:
        await requests.done(req, ok=False, detail=f"{req.sha!r} is not a full commit id: nothing deployed")
        return
    log.info("rollout %s: deploying %s to production", req.rollout, req.sha[:8])
    record = await deploy("production", req.sha, repo)
    if record.result == "succeeded":
        detail = f"deployed to {len(record.releases)} server(s) in {record.seconds:.1f}s"
    else:
        where = f" at {record.failed_host}, task {record.failed_task!r}" if record.failed_host else ""
        detail = f"failed{where}: {record.error}"
    await requests.done(req, ok=record.result == "succeeded", detail=detail)
