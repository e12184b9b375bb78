"""Trust at 3 a.m.: a human's alert is never cleared by the monitor, the chat
webhook is retried until it takes the message, and secrets never reach a log
line or the status output."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from aiohttp import web

from state import StateStore, connect
from tests.support import ROOT
from tests.support.mail import SMTP_USER, Inbox, SmtpServer
from tests.support.monitor import (
    KEYS,
    Burner,
    MonitorProcess,
    alert_of,
    failures,
    mail_env,
    monitor_args,
    notifier,
    rules_file,
    until,
)
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer


class ChatServer:
    """A Slack-style webhook receiver on 127.0.0.1 in its own thread; the first
    `fail_first` posts get a 500."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.posts: list[dict[str, object]] = []
        self.attempts = 0
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/services/T0/B0/secret-token-Zx9"
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self.lock:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                return web.Response(status=500, text="try later")
            self.posts.append(body)
        return web.Response(text="ok")

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/services/T0/B0/secret-token-Zx9", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.SockSite(self.runner, self.sock).start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def start(self) -> ChatServer:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def kinds(self) -> list[str]:
        with self.lock:
            return [str(p["text"]).split(":")[1].strip() for p in self.posts]


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer(fail_first=2).start()
    yield server
    server.stop()


def test_a_humans_alert_is_left_alone_and_the_webhook_is_retried(
    redis_url: str,
    *,
    smtp: SmtpServer,
    chat: ChatServer,
    burner: Burner,
    start_monitor: Callable[..., MonitorProcess],
    tmp_path: Path,
) -> None:
    async def human_sets_alert() -> None:
        client = connect(redis_url)
        await StateStore(client, KEYS, actor="cli:alice@laptop").set_alert("deploy in progress")
        await client.aclose()

    asyncio.run(human_sets_alert())
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    env = mail_env(redis_url, smtp.port, MONITOR_WEBHOOK_URL=chat.url)
    mon = start_monitor(*monitor_args(burner, rules_file(tmp_path), "careful"), env=env)
    until(lambda: bool(smtp.inbox.of_state("firing")), 20, "the firing email", mon)
    firing = smtp.inbox.of_state("firing")[0].message.get_content()
    assert "canary traffic was already stopped (alert key set by cli:alice@laptop): left as it is" in firing

    burner.idle()
    until(lambda: bool(smtp.inbox.of_state("resolved")), 20, "the resolved email", mon)
    resolved = smtp.inbox.of_state("resolved")[0].message.get_content()
    assert "left the alert key set: cli:alice@laptop set it, not this monitor" in resolved
    alert = alert_of(client)
    assert alert is not None and alert["by"] == "cli:alice@laptop" and alert["reason"] == "deploy in progress"

    # Two 500s, then the firing and the resolved message, in order.
    until(lambda: len(chat.kinds()) == 2, 20, "both chat messages", mon)
    assert chat.kinds() == ["FIRING", "RESOLVED"]
    assert chat.attempts == 4
    assert notifier(client, "careful", "webhook")["state"] == "ok"
    assert "Traceback" not in mon.output()
    client.close()


def test_secrets_never_reach_logs_or_status(
    redis_url: str,
    tls_files: tuple[Path, Path],
    burner: Burner,
    start_monitor: Callable[..., MonitorProcess],
    tmp_path: Path,
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    server = SmtpServer(Inbox(), tls_context=ctx, require_starttls=True).start()
    password = "Wr0ng-but-secret-Pw"  # noqa: S105  (a test value)
    hook = f"http://127.0.0.1:{free_port()}/services/T0/B0/hook-token-Qq7"
    env = mail_env(
        redis_url,
        server.port,
        MONITOR_SMTP_SECURITY="starttls",
        MONITOR_SMTP_CA_FILE=str(tls_files[0]),
        SMTP_USER=SMTP_USER,
        SMTP_PASSWORD=password,
        MONITOR_WEBHOOK_URL=hook,
        MONITOR_LOG_LEVEL="DEBUG",
    )
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        mon = start_monitor(*monitor_args(burner, rules_file(tmp_path), "secretive"), env=env)

        def both_failed_twice() -> bool:
            return all(failures(client, "secretive", c) >= 2 for c in ("email", "webhook"))

        until(both_failed_twice, 20, "email and webhook to fail twice", mon)
        assert "refused the login of 'switchyard'" in str(
            notifier(client, "secretive", "email")["last_error"]
        )
        assert "ClientConnectorError" in str(notifier(client, "secretive", "webhook")["last_error"])
        assert server.inbox.logins and set(server.inbox.logins) == {"refused"}
        assert mon.stop() == 0
        shown = [mon.output()]
        for args in ((), ("--json",)):
            done = subprocess.run(
                [sys.executable, "-m", "monitor", "status", "--redis-url", redis_url, *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, done.stderr
            shown.append(done.stdout + done.stderr)
        json.loads(shown[2])
        everything = "\n".join(shown) + json.dumps(client.hgetall(KEYS.monitor_notifiers("secretive")))
        assert "delivery failed" in everything and "FAILING" in everything
        for secret in (password, "hook-token-Qq7"):
            assert secret not in everything
    finally:
        server.stop()
        client.close()


def test_redis_outage_while_the_load_rises_loses_nothing(
    own_redis: RedisServer,
    smtp: SmtpServer,
    burner: Burner,
    start_monitor: Callable[..., MonitorProcess],
    tmp_path: Path,
) -> None:
    """Redis is down when the rule fires: the monitor keeps going, and once Redis
    answers it writes the state, sets the alert and the email goes out."""
    burner.idle()
    burner.flag.unlink(missing_ok=True)
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    mon = start_monitor(
        *monitor_args(burner, rules_file(tmp_path), "islanded"), env=mail_env(own_redis.url, smtp.port)
    )
    until(
        lambda: client.hget(KEYS.monitor_rules("islanded"), "cpu") is not None, 20, "the first samples", mon
    )
    client.close()
    own_redis.stop()
    burner.flag.touch()
    until(lambda: "rule cpu firing" in mon.output(), 20, "the rule to fire without Redis", mon)
    assert "FAILED to set the alert key" in mon.output()
    assert smtp.inbox.messages == []

    own_redis.start()
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    until(lambda: alert_of(client) is not None, 20, "the alert key once Redis is back", mon)
    until(lambda: bool(smtp.inbox.of_state("firing")), 20, "the firing email once Redis is back", mon)
    # The email tells what happened at the time: the first try failed.
    assert "FAILED to set the alert key" in smtp.inbox.of_state("firing")[0].message.get_content()
    assert "actions done on retry" in mon.output()
    burner.idle()
    until(lambda: bool(smtp.inbox.of_state("resolved")), 20, "the resolved email", mon)
    assert alert_of(client) is None
    assert mon.proc.poll() is None and "Traceback" not in mon.output()
    client.close()
