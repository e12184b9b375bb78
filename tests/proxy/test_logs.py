"""The access log (off by default, written off the event loop) and JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp

from proxy.app import ProxyApp
from proxy.logs import JsonFormatter
from state import StateStore
from tests.support.backends import Backend
from tests.support.proxy import ProxyProcess, proxy_config
from tests.support.wait import async_wait_until


async def test_access_log_lines_in_a_file(
    redis_url: str, store: StateStore, backends: dict[str, Backend], tmp_path: Path
) -> None:
    await store.add_backend("production", backends["production"].url)
    path = tmp_path / "access.log"
    app = ProxyApp(proxy_config(redis_url, access_log=str(path)))
    await app.start()
    try:
        await async_wait_until(lambda: bool(app.snapshots.snapshot.production), 5, "the pool")
        async with aiohttp.ClientSession() as s:
            for i in range(20):
                async with s.get(f"http://127.0.0.1:{app.port}/page/{i}?q=1") as r:
                    assert r.status == 200
            async with s.get(f"http://127.0.0.1:{app.port}/disable/1", headers={"Host": "x"}) as r:
                assert r.status == 200
            async with s.get(f"http://127.0.0.1:{app.port}/disable/0?token=Tk-secret-9&x=1") as r:
                assert r.status == 200  # no admin token is set: any token passes

        def lines() -> list[str]:
            return path.read_text().splitlines() if path.exists() else []

        await async_wait_until(lambda: len(lines()) == 22, 5, "22 access log lines")
    finally:
        await app.stop()
    assert "Tk-secret-9" not in path.read_text()
    assert '"GET /disable/0?token=***&x=1 HTTP/1.1" 200' in lines()[-1]
    lines_seen = lines()[:-1]
    first = lines_seen[0]
    assert '"GET /page/0?q=1 HTTP/1.1" 200 version=production' in first
    assert f"backend={backends['production'].url}" in first
    assert first.startswith("127.0.0.1 - - [")
    assert '"GET /disable/1 HTTP/1.1" 200 version=proxy backend=-' in lines_seen[-1]


async def test_access_log_is_off_by_default_and_json_on_request(
    proxy_process: Callable[..., ProxyProcess], store: StateStore, backends: dict[str, Backend]
) -> None:
    await store.add_backend("production", backends["production"].url)
    quiet = await asyncio.to_thread(proxy_process)
    loud = await asyncio.to_thread(proxy_process, env={"PROXY_ACCESS_LOG": "-", "PROXY_LOG_FORMAT": "json"})
    async with aiohttp.ClientSession() as s:
        for proc in (quiet, loud):
            for _ in range(3):
                async with s.get(f"http://127.0.0.1:{proc.port}/hello") as r:
                    assert r.status == 200
    await async_wait_until(lambda: loud.output().count('"msg": "request"') == 3, 5, "three JSON access lines")
    assert "/hello" not in quiet.output()
    records = [json.loads(line) for line in loud.output().splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "proxy.access"]
    assert [(r["method"], r["target"], r["status"], r["version"]) for r in access] == [
        ("GET", "/hello", 200, "production")
    ] * 3
    assert all(isinstance(r["duration_ms"], float) for r in access)
    assert any(r["logger"] == "proxy" and "listening" in r["msg"] for r in records)


def test_json_formatter_escapes_and_keeps_extras() -> None:
    record = logging.makeLogRecord(
        {"name": "proxy", "levelname": "INFO", "msg": 'a "quoted" %s', "args": ("x",)}
    )
    record.backend = "http://b:1"
    out = json.loads(JsonFormatter().format(record))
    assert out["msg"] == 'a "quoted" x' and out["backend"] == "http://b:1" and out["logger"] == "proxy"
