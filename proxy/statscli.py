"""`python -m proxy stats [--window 5m] [--json]` and GET /stats/versions?window=300 on
the admin listener: the same report (proxy/statsreport.py) from the same reads."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from proxy.config import ProxyConfig
from proxy.statsreport import parse_window, render, report
from proxy.versionstats import read_window
from state import StateStore, VersionStatsStore

STATS_STORE = web.AppKey("version_stats", VersionStatsStore)
ROUTING_STORE = web.AppKey("version_stats_routing", StateStore)
DEFAULT_WINDOW = "5m"


def add_stats_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stats", parents=[common], help="per-version requests, errors and latency, all proxies"
    )
    p.add_argument(
        "--window", default=DEFAULT_WINDOW, help="how far back: seconds, or 90s, 5m, 1h (default 5m)"
    )
    p.add_argument("--json", action="store_true")


async def gather(routing: StateStore, stats: VersionStatsStore, window_s: int) -> dict[str, Any]:
    """Read the last `window_s` seconds and the weight, and make the report."""
    now = time.time()
    windows = await read_window(stats, now - window_s, now)
    snap = await routing.read_snapshot()
    effective = 0 if snap.alert is not None or not snap.staging else snap.weight
    return report(windows, weight=snap.weight, effective_weight=effective, requested_s=window_s, now=now)


def stats_op(args: argparse.Namespace, config: ProxyConfig) -> Callable[[StateStore], Awaitable[int]]:
    """The command, checked before Redis is touched (a bad --window changes nothing)."""
    window_s = parse_window(args.window, config.stats_retention_s)

    async def op(store: StateStore) -> int:
        stats = stats_store(store, config)
        body = await gather(store, stats, window_s)
        print(json.dumps(body, indent=2) if args.json else "\n".join(render(body)))
        return 0

    return op


def stats_store(store: StateStore, config: ProxyConfig) -> VersionStatsStore:
    return VersionStatsStore(
        store.redis,
        store.keys,
        actor=store.actor,
        bucket_s=config.stats_bucket_s,
        retention_s=config.stats_retention_s,
    )


async def get_version_stats(request: web.Request) -> web.Response:
    stats = request.app[STATS_STORE]
    window_s = parse_window(request.query.get("window", DEFAULT_WINDOW), stats.retention_s)
    return web.json_response(await gather(request.app[ROUTING_STORE], stats, window_s))


def mount_version_stats(admin: web.Application, routing: StateStore, stats: VersionStatsStore) -> None:
    """GET /stats/versions on the admin listener: a read, open as the admin API's reads are."""
    admin[ROUTING_STORE] = routing
    admin[STATS_STORE] = stats
    admin.router.add_get("/stats/versions", get_version_stats)
