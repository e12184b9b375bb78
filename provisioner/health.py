"""Is a new server healthy, seen from where the proxies are? Polled against a deadline."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from provisioner.errors import HealthError

REQUEST_TIMEOUT_S = 2.0


def verdict(status: int, body: bytes) -> str | None:
    """None if a /health answer means healthy, else why not."""
    if status != 200:
        return f"answered {status}"
    try:
        data = json.loads(body)
    except ValueError:
        return "answered 200 without JSON"
    if not isinstance(data, dict) or data.get("status") != "ok":
        return f"answered 200 but not ok: {body[:80]!r}"
    return None


async def wait_healthy(url: str, *, path: str, timeout_s: float, interval_s: float = 0.2) -> float:
    """GET `url + path` until it is healthy; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout_s
    last = "no answer"
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            try:
                async with session.get(url + path, allow_redirects=False) as response:
                    problem = verdict(response.status, await response.read())
                if problem is None:
                    return loop.time() - start
                last = problem
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = str(exc) or type(exc).__name__
            if loop.time() + interval_s > deadline:
                raise HealthError(f"{url}{path} not healthy after {timeout_s:.0f}s: {last}")
            await asyncio.sleep(interval_s)
