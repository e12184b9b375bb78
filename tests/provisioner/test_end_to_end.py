"""End to end with real processes: the proxy, two monitors, the worker, a sample app.

A process burning CPU is what the monitors measure (`--source pid:N`, for the
reason tests/monitor/test_end_to_end.py gives: the host's own CPU on a shared
2-core machine is noise). The proxy host's monitor asks for capacity, the
worker creates, configures and registers a local server that then answers
through the proxy; once the burner idles, the app host's monitor reports quiet
samples and the worker drains and destroys the server. A bounded client loop
runs through the proxy the whole time and must see no failed request.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from provisioner.scale.local import app_pid
from state import KeySpace, ServerRecord, ServerRegistry, StateStore, connect
from tests.support import ROOT
from tests.support.monitor import BURNER
from tests.support.ports import free_port
from tests.support.provisioner import stop_apps
from tests.support.wait import async_wait_until, eventually

MAX_REQUESTS = 30_000  # a safety cap: the phases end long before it
PACE_S = 0.002  # between one client's requests


class Proc:
    """A child process with its output in a file, ended by its PID."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], out_dir: Path) -> None:
        self.name = name
        self.out = out_dir / f"{name}.out"
        with self.out.open("ab") as sink:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.proc.returncode}:\n{self.out.read_text()[-3000:]}"
            )
        return True

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[dict[str, Proc]]:
    started: dict[str, Proc] = {}
    yield started
    # The worker first: it retires its servers on the way out.
    for name in sorted(started, key=lambda n: n != "worker"):
        started[name].stop()
    stop_apps(tmp_path)  # in case the worker could not


def env_of(**extra: str) -> dict[str, str]:
    own = ("PROXY_", "MONITOR_", "PROVISIONER_", "DIGITALOCEAN_", "SMTP_", "ALERT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own) and k != "REDIS_URL"}
    env.update(extra)
    return env


@dataclass
class Load:
    """Clients through the proxy, counting every answer, until told to stop."""

    port: int
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self) -> None:
        url = f"http://127.0.0.1:{self.port}/version"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            while not self.stop.is_set() and self.ok + len(self.failed) < MAX_REQUESTS:
                try:
                    async with session.get(url) as response:
                        body = await response.text()
                        if response.status == 200 and body == "v1\n":
                            self.ok += 1
                        else:
                            self.failed.append(f"{response.status} {body[:80]!r}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failed.append(repr(exc))
                await asyncio.sleep(PACE_S)


async def pid_through_proxy(port: int) -> int:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session,
        session.get(f"http://127.0.0.1:{port}/?format=json") as response,
    ):
        assert response.status == 200
        return int((await response.json())["pid"])


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_cpu_load_adds_a_server_and_quiet_removes_it_without_a_failed_request(
    redis_url: str, store: StateStore, procs: dict[str, Proc], tmp_path: Path
) -> None:
    python = sys.executable
    app_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    servers = tmp_path / "servers"
    rules = tmp_path / "monitor.toml"
    rules.write_text(
        "[rules.cpu]\nthreshold = 20\nrecover_below = 10\nfor_samples = 3\n[rules.mem]\nenabled = false\n"
    )
    flag = tmp_path / "burn"
    static = f"http://127.0.0.1:{app_port}"

    procs["app"] = Proc(
        "app",
        [python, "-m", "examples.app", "--version", "v1", "--listen", f"127.0.0.1:{app_port}"],
        env_of(),
        tmp_path,
    )
    procs["proxy"] = Proc(
        "proxy",
        [python, "-m", "proxy", "serve", "--listen", f"127.0.0.1:{proxy_port}", "--admin-listen",
         f"127.0.0.1:{admin_port}", "--redis-url", redis_url],
        env_of(PROXY_HEARTBEAT_INTERVAL_S="0.2"),
        tmp_path,
    )  # fmt: skip
    procs["worker"] = Proc(
        "worker",
        [python, "-m", "provisioner", "worker", "--provider", "local", "--redis-url", redis_url],
        env_of(
            PROVISIONER_LOCAL_DIR=str(servers),
            PROVISIONER_COOLDOWN_S="60",
            PROVISIONER_SCALE_IN_WINDOW_S="3",
            PROVISIONER_SAMPLE_MAX_GAP_S="1",
            PROVISIONER_SCALE_IN_CHECK_S="0.5",
            PROVISIONER_SCALE_IN_COOLDOWN_S="1",
            PROVISIONER_DRAIN_TIMEOUT_S="15",
            PROVISIONER_DESTROY_ON_EXIT="true",
        ),
        tmp_path,
    )
    await store.add_backend("production", static)
    client = connect(redis_url)
    registry = ServerRegistry(client, KeySpace())
    load = Load(proxy_port)
    clients: list[asyncio.Task[None]] = []
    try:
        await async_wait_until(
            lambda: procs["proxy"].alive() and procs["app"].alive() and _answers(proxy_port), 20, "the proxy"
        )
        clients = [asyncio.create_task(load.client()) for _ in range(2)]

        # Load: the burner runs, both monitors measure it.
        flag.touch()
        procs["burner"] = Proc("burner", [python, str(BURNER), str(flag), "150"], env_of(), tmp_path)
        burn_started = time.time()
        burner = str(procs["burner"].proc.pid)
        for role in ("proxy", "app"):
            procs[f"monitor-{role}"] = Proc(
                f"monitor-{role}",
                [python, "-m", "monitor", "run", "--role", role, "--name", f"e2e-{role}",
                 "--interval-s", "0.2", "--source", f"pid:{burner}", "--config", str(rules),
                 "--redis-url", redis_url],
                env_of(),
                tmp_path,
            )  # fmt: skip

        records: list[ServerRecord] = []

        async def registered() -> bool:
            records[:] = [r for r in await registry.all() if r.state == "active"]
            return bool(records)

        await _until_async(registered, 90, "a server to be registered", procs)
        (record,) = records
        registered_seen = time.time()
        new_pid = app_pid(servers / record.id, int(record.url.rsplit(":", 1)[1]))
        assert new_pid is not None
        while await pid_through_proxy(proxy_port) != new_pid:
            assert time.time() - registered_seen < 10, "the new server never answered through the proxy"
        answered = time.time()
        assert (await store.read_snapshot()).production == tuple(sorted((static, record.url)))
        up_ok, up_failed = load.ok, list(load.failed)

        # Quiet: the burner idles, the app host's samples fall, the worker retires the server.
        flag.unlink()
        idle_at = time.time()
        await _until_async(lambda: _gone(registry, record.id), 60, "the server to be retired", procs)
        retired = time.time()
        during_scale_in = load.ok - up_ok
        assert (await store.read_snapshot()).production == (static,)
        assert not (servers / record.id).exists()
        assert not os.path.exists(f"/proc/{new_pid}/cwd")
        tail = load.ok + 200
        await async_wait_until(lambda: load.ok >= tail or bool(load.failed), 30, "200 more requests")
    finally:
        load.stop.set()
        await asyncio.gather(*clients)
        await client.aclose()

    audit = list(reversed(await store.audit_log(200)))
    asked = next(e for e in audit if e.what == "scale:production" and e.before is None)
    served = next(e for e in audit if e.what == "scale:production" and e.before is not None)
    added = next(e for e in audit if e.what == "pool:production" and record.url in _urls(e.after))
    removed = next(
        e
        for e in audit
        if e.what == "pool:production" and record.url in _urls(e.before) and record.url not in _urls(e.after)
    )
    assert asked.who == "monitor:e2e-proxy"
    assert isinstance(served.after, dict) and served.after["result"] == "added"

    assert up_failed == [] and load.failed == [], (up_failed, load.failed[:10])
    # Enough traffic for "none failed" to mean something: hundreds of requests while the
    # server was being added, and while it was being drained and destroyed.
    assert up_ok >= 500 and during_scale_in >= 100, (up_ok, during_scale_in)
    timings = " ".join(f"{k}={v:.2f}s" for k, v in record.timings.items())
    print(
        f"\nE2E: burn->request {asked.at - burn_started:.2f}s, request->in pool {added.at - asked.at:.2f}s"
        f" ({timings}), in pool->answering through the proxy {answered - added.at:.2f}s;"
        f" burn->answering {answered - burn_started:.2f}s; request->answering {answered - asked.at:.2f}s."
        f" Idle->out of pool {removed.at - idle_at:.2f}s, idle->destroyed {retired - idle_at:.2f}s."
        f" Requests: {up_ok} during scale-up, {during_scale_in} during scale-in,"
        f" {load.ok - up_ok - during_scale_in} after, 0 failed."
    )


def _urls(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/version")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


async def _gone(registry: ServerRegistry, server_id: str) -> bool:
    return await registry.get(server_id) is None


async def _until_async(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, procs: dict[str, Proc]
) -> None:
    """Poll `check` against a deadline, failing early (with its output) if a process died."""

    def alive() -> None:
        for proc in procs.values():
            if proc.name != "burner":
                proc.alive()

    await eventually(
        check,
        timeout_s,
        what,
        interval_s=0.05,
        alive=alive,
        detail=lambda: f":\n{procs['worker'].out.read_text()[-3000:]}",
    )
