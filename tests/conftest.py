"""Real-server fixtures: redis-server on a free port, HTTP backends, the proxy.

Readiness is polled against a deadline, never slept; every process is ended by
the PID this file started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from aiohttp import web

from proxy.app import ProxyApp
from proxy.config import Address, ProxyConfig
from state import KeySpace, StateStore, connect

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports (for per-worker admin ports)."""
    for _ in range(100):
        base = free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no run of {count} free ports found")


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def async_wait_until(
    predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition"
) -> float:
    """Poll `predicate` on the loop; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class RedisServer:
    """A redis-server child on a free port that tests may stop and start again."""

    def __init__(self, *, persistent: bool = False) -> None:
        self.persistent = persistent
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: run `bash .ci/run` or apt-get install redis-server"
            )
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sy-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                # Persistent servers survive the kill -9 that outage tests deal.
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--dir",
                self.dir,
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.ConnectionError:
                assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
                return False

        try:
            wait_until(up, 10, f"redis-server on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis(port=redis_server.port)
    client.flushdb()
    client.close()
    yield redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private, persistent redis-server for tests that kill and restart it."""
    server = RedisServer(persistent=True)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[StateStore]:
    client = connect(redis_url)
    yield StateStore(client, KeySpace(), actor="test")
    await client.aclose()


@dataclass
class Backend:
    """A real aiohttp server that says who it is and records what it received."""

    name: str
    url: str = ""
    hits: int = 0
    seen: list[dict[str, object]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self.runner, sock).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        body = await request.read()
        record = {
            "backend": self.name,
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_len": len(body),
        }
        self.seen.append(record)
        return web.json_response(record, headers={"X-Backend": self.name})


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, Backend]]:
    pair = {"production": Backend("production"), "staging": Backend("staging")}
    for b in pair.values():
        await b.start()
    yield pair
    for b in pair.values():
        await b.stop()


def proxy_config(redis_url: str, **overrides: object) -> ProxyConfig:
    values: dict[str, object] = {
        "listen": Address("127.0.0.1", 0),
        "admin_listen": Address("127.0.0.1", 0),
        "redis_url": redis_url,
        "resync_interval_s": 1.0,
        "shutdown_timeout_s": 2.0,
    }
    values.update(overrides)
    return ProxyConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[ProxyApp]:
    app = ProxyApp(proxy_config(redis_url))
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def routed(
    store: StateStore, backends: dict[str, Backend], proxy: ProxyApp
) -> AsyncIterator[tuple[ProxyApp, dict[str, Backend], StateStore]]:
    """A proxy in front of one production and one staging backend."""
    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    await async_wait_until(lambda: bool(proxy.mirror.snapshot.staging), 5, "proxy to see the pools")
    yield proxy, backends, store


def tally(records: list[str]) -> Counter[str]:
    return Counter(records)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 20
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_") and k != "REDIS_URL"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def json_lines(text: str) -> list[object]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@contextlib.contextmanager
def raw_connection(port: int, timeout_s: float = 5.0) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    try:
        yield sock
    finally:
        sock.close()


class ProxyProcess:
    """`python -m proxy serve` as a child process, ready once its /health answers."""

    def __init__(
        self, redis_url: str, *extra: str, env: dict[str, str] | None = None, admin_ports: int = 1
    ) -> None:
        self.port = free_port()
        self.admin_port = free_port_run(admin_ports)
        self.argv = [
            sys.executable,
            "-m",
            "proxy",
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--admin-listen",
            f"127.0.0.1:{self.admin_port}",
            "--redis-url",
            redis_url,
            *extra,
        ]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_") and k != "REDIS_URL"}
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="sy-proxy-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 20.0) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log)

        def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"proxy exited:\n{self.output()}"
            try:
                with socket.create_connection(("127.0.0.1", self.admin_port), timeout=0.5) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    return s.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

        wait_until(healthy, timeout_s, "the proxy process to be healthy")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def rss_kib(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for pid {self.pid}")

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture
def proxy_process(redis_url: str) -> Iterator[Callable[..., ProxyProcess]]:
    started: list[ProxyProcess] = []

    def start(*extra: str, env: dict[str, str] | None = None, admin_ports: int = 1) -> ProxyProcess:
        proc = ProxyProcess(redis_url, *extra, env=env, admin_ports=admin_ports)
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.cleanup()
