"""How fast a state change reaches a running proxy, seen from a client.

`python -m bench.propagation [--trials N]` starts two backends, a private
redis-server and `python -m proxy serve`, sets the weight to 100 (everything to
staging), then N times: raise the alert through `state/` and time until the
first response that comes from production; clear it and time until staging
answers again. A client on one keep-alive connection asks back to back, so the
figure includes one request's latency. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import services
from bench.errors import BenchError
from bench.runconfig import BODIES
from state import KeySpace, StateStore, connect

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nCookie: sy_bucket=0\r\n\r\n"


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


async def _until(
    body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[float, int]:
    """Seconds from now until a response with `body`, and the requests it took."""
    start = time.perf_counter()
    asked = 0
    while True:
        asked += 1
        if await _ask(reader, writer) == body:
            return time.perf_counter() - start, asked
        if time.perf_counter() - start > 5:
            raise BenchError("the proxy did not follow the change within 5 s")


async def measure(port: int, redis_url: str, trials: int) -> dict[str, list[float]]:
    client = connect(redis_url)
    store = StateStore(client, KeySpace(), actor="bench")
    reader, writer = await asyncio.open_connection(services.HOST, port)
    on: list[float] = []
    off: list[float] = []
    try:
        await store.set_weight(100)
        await _until(BODIES["staging"], reader, writer)
        for _ in range(trials):
            write = asyncio.create_task(store.set_alert("bench"))
            took, _n = await _until(BODIES["production"], reader, writer)
            await write
            on.append(took)
            write = asyncio.create_task(store.clear_alert())
            took, _n = await _until(BODIES["staging"], reader, writer)
            await write
            off.append(took)
    finally:
        writer.close()
        await client.aclose()
    return {"alert set": on, "alert cleared": off}


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.2f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.propagation", description=__doc__)
    parser.add_argument("--trials", type=int, default=100, help="changes each way (100)")
    args = parser.parse_args(argv)
    tools = services.ensure_tools(need_nginx=False, need_redis=True)
    assert tools.redis_server is not None
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-prop-"))
    sup = services.Supervisor(workdir)
    try:
        python = sys.executable
        redis_url = services.start_split(sup, tools.redis_server, python, BODIES)
        proxy = services.start_proxy(sup, python, redis_url, [])
        results = asyncio.run(measure(proxy.port, redis_url, args.trials))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.trials} changes each way, from the write's start to the first response that obeys it")
    for what, values in results.items():
        print(
            f"  {what:<14} median {statistics.median(values) * 1000:.2f} ms"
            f"  p90 {_ms(values, 0.9)}  max {max(values) * 1000:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
