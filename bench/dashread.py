"""How long the dashboard's hour read holds the event loop the data path shares.

    .venv/bin/python -m bench.dashread                  # slices 30, 10, 5; both parsers
    .venv/bin/python -m bench.dashread --reads 10 --json /tmp/dashread.json

Starts a private redis-server and fills an hour of per-version buckets as busy proxies
leave them (361 buckets of 10 s, 92 fields each: two pools, two releases, 23 counters).
Then, for each reply parser redis-py can use (hiredis, when installed, and its own
Python one) and each slice size, it runs the dashboard's full read
(proxy/dashboard/counters.py: CountReader.read over the whole hour) `--reads` times
while a probe on the same loop asks to wake every millisecond, and reports the read's
wall time and the longest the probe was kept waiting: what a request arriving then
would wait. A benchmark, not a test: it asserts nothing but that the reads happened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser
from redis.utils import HIREDIS_AVAILABLE

from proxy.dashboard.counters import CountReader, hour_for
from state import KeySpace, VersionStatsStore
from tests.support.redis_server import RedisServer

BUCKET_S = 10
HOUR_BUCKETS = 361
RELEASES = (
    ("production", "v1-1a2b3c4d"),
    ("production", "v1-9f8e7d6c"),
    ("staging", "v2-5e6f7a8b"),
    ("staging", "v2-0c1d2e3f"),
)
STATUSES = ("status.2xx", "status.3xx", "status.4xx", "status.5xx")
COUNTERS = ("requests", *STATUSES, "upstream.reset", *(f"latency.{i}" for i in range(17)))


async def _fill(store: VersionStatsStore, now: float) -> None:
    first = store.bucket_of(now) - (HOUR_BUCKETS - 1) * BUCKET_S
    batch: dict[int, Any] = {}
    for n, bucket in enumerate(range(first, first + HOUR_BUCKETS * BUCKET_S, BUCKET_S)):
        batch[bucket] = {key: {c: 1 + (n * 7 + i) % 97 for i, c in enumerate(COUNTERS)} for key in RELEASES}
        if len(batch) == 60:
            await store.add("bench", f"fill-{bucket}", batch)
            batch = {}
    if batch:
        await store.add("bench", "fill-last", batch)


async def _probe(stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.001)
        worst[0] = max(worst[0], time.perf_counter() - asked - 0.001)


async def _measure(url: str, parser: type, slice_buckets: int, reads: int) -> dict[str, float]:
    client = aioredis.Redis.from_url(url, decode_responses=True, parser_class=parser)
    try:
        store = VersionStatsStore(client, KeySpace(), bucket_s=BUCKET_S)
        walls, stalls = [], []
        for _ in range(reads):
            reader = CountReader(store, slice_buckets=slice_buckets)
            hour = hour_for(store)
            stop, worst = asyncio.Event(), [0.0]
            probe = asyncio.create_task(_probe(stop, worst))
            await asyncio.sleep(0.01)  # the probe is running before the read starts
            started = time.perf_counter()
            changed = await reader.read(hour, time.time())
            walls.append(time.perf_counter() - started)
            stop.set()
            await probe
            stalls.append(worst[0])
            if len(changed) < HOUR_BUCKETS - 2:
                raise SystemExit(f"the read saw {len(changed)} buckets, not the hour's {HOUR_BUCKETS}")
        return {
            "read_ms_median": 1000 * statistics.median(walls),
            "stall_ms_median": 1000 * statistics.median(stalls),
            "stall_ms_max": 1000 * max(stalls),
        }
    finally:
        await client.aclose()


async def _bench(reads: int, slices: list[int]) -> dict[str, dict[str, float]]:
    redis = RedisServer()
    redis.start()
    try:
        client = aioredis.Redis.from_url(redis.url, decode_responses=True)
        await _fill(VersionStatsStore(client, KeySpace(), bucket_s=BUCKET_S), time.time())
        await client.aclose()
        parsers: dict[str, type] = {"python": _AsyncRESP2Parser}
        if HIREDIS_AVAILABLE:
            parsers["hiredis"] = _AsyncHiredisParser
        return {
            f"{name}, slice {size}": await _measure(redis.url, parser, size, reads)
            for name, parser in parsers.items()
            for size in slices
        }
    finally:
        redis.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashread", description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=5, help="full reads per setting (default 5)")
    parser.add_argument("--slices", default="30,10,5", help="buckets per pipeline to try (default 30,10,5)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        slices = [int(s) for s in args.slices.split(",")]
    except ValueError:
        parser.error(f"--slices {args.slices!r}: comma-separated whole numbers")
    if args.reads < 1 or not slices or min(slices) < 1:
        parser.error("--reads and every slice: 1 or more")
    figures = asyncio.run(_bench(args.reads, slices))
    print(f"the dashboard's full hour read, {HOUR_BUCKETS} buckets x {len(RELEASES) * len(COUNTERS)} fields")
    print(f"  {'parser, buckets per pipeline':<28}{'read (ms)':>12}{'stall median':>14}{'stall max':>12}")
    for label, f in figures.items():
        read, stall, worst = f["read_ms_median"], f["stall_ms_median"], f["stall_ms_max"]
        print(f"  {label:<28}{read:>12.1f}{stall:>14.1f}{worst:>12.1f}")
    if args.json:
        args.json.write_text(json.dumps({"reads": args.reads, **figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
