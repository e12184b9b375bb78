"""Active health checks: probe ejected backends and bring back those that answer.

Only ejected backends are probed, so a healthy pool costs nothing. A backend
that passes `GET <path>` (any 2xx or 3xx) returns at once instead of waiting
out its ejection; one that fails is held out until the next round.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from proxy.context import ProxyContext

log = logging.getLogger("proxy")


async def probe(backend: str, path: str, timeout_s: float) -> bool:
    parts = urlsplit(backend)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n"
                % (path.encode(), parts.netloc.encode())
            )
            status_line = await reader.readline()
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
    fields = status_line.split(b" ", 2)
    return len(fields) >= 2 and fields[1][:1] in (b"2", b"3")


async def check_forever(ctx: ProxyContext, path: str, interval_s: float, timeout_s: float) -> None:
    outliers = ctx.outliers
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        snap = ctx.state.snapshot
        outliers.forget(set(snap.production) | set(snap.staging))
        ejected = list(outliers.ejected)
        if not ejected:
            continue
        results = await asyncio.gather(*(probe(b, path, timeout_s) for b in ejected))
        now = loop.time()
        for backend, ok in zip(ejected, results, strict=True):
            if ok:
                log.info("backend back after a passing health check backend=%s", backend)
                outliers.restore(backend, now)
            else:
                outliers.hold(backend, now + interval_s * 1.5)
