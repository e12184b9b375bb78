"""`python -m monitor run` as a child process against a real Redis, a real SMTP
server and a process that really burns CPU.

Why the burner is measured as a process (`--source pid:N`) rather than the
whole host: this machine has 2 cores that other test suites share, so the
host's CPU can sit anywhere between 0 and 100% whatever this test does, and a
threshold on it would make the test flaky both ways. One busy-looping process
measures near 100% of a core when it runs alone and still well above 20% on a
machine crowded with four runnable processes per core; idle, it measures 0-2%.
A threshold of 20% with recovery below 10% therefore separates "burning" from
"idle" under any load this machine sees. The `system` source runs the same
code path after psutil (see test_sampler.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import redis

from proxy.app import ProxyApp
from state import ScaleQueue, StateStore, connect
from tests.support import ROOT
from tests.support.backends import Backend
from tests.support.mail import Inbox, SmtpServer
from tests.support.monitor import (
    KEYS,
    Burner,
    MonitorProcess,
    alert_of,
    clean_env,
    failures,
    mail_env,
    monitor_args,
    notifier,
    rule_state,
    rules_file,
    until,
)
from tests.support.wait import async_wait_until

Routed = tuple[ProxyApp, dict[str, Backend], StateStore]


async def versions(port: int, n: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        for _ in range(n):
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 200
                seen[r.headers["X-Backend"]] = seen.get(r.headers["X-Backend"], 0) + 1
    return seen


async def test_burning_cpu_alerts_stops_the_canary_then_resolves(
    routed: Routed,
    *,
    redis_url: str,
    smtp: SmtpServer,
    burner: Burner,
    start_monitor: Callable[..., MonitorProcess],
    tmp_path: Path,
) -> None:
    proxy, _, _ = routed
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    mon = start_monitor(
        *monitor_args(burner, rules_file(tmp_path), "e2e-proxy"), env=mail_env(redis_url, smtp.port)
    )
    inbox = smtp.inbox

    def dead() -> bool:
        assert mon.proc.poll() is None, mon.output()
        return False

    await async_wait_until(lambda: dead() or bool(inbox.of_state("firing")), 20, "the firing email")
    alert = alert_of(client)
    assert alert is not None and alert["by"] == "monitor:e2e-proxy", alert
    assert "cpu" in str(alert["reason"]) and "> 20%" in str(alert["reason"])
    async_client = connect(redis_url)
    try:
        assert await ScaleQueue(async_client).pending("production") is not None
    finally:
        await async_client.aclose()

    (firing,) = inbox.of_state("firing")
    assert firing.rcpt_tos == ["ops@example.com"]
    assert firing.message["Subject"].startswith("[switchyard] FIRING: CPU ")
    assert "> 20% on e2e-proxy (proxy)" in firing.message["Subject"]
    text = firing.message.get_content()
    for expected in (
        "Rule cpu on host e2e-proxy (role proxy) is FIRING.",
        f"CPU percent (process {burner.pid})",
        "fires above 20% for 3 samples, resolves below 10% for 3 samples",
        "stopped canary traffic: set the alert key",
        "asked the provisioner for one more production server",
    ):
        assert expected in text, text

    # The running proxy obeys: not one of 60 new visitors goes to staging
    # (at 30% each, 60 misses by chance has odds of 0.7^60, about 5e-10).
    await async_wait_until(
        lambda: proxy.snapshots.snapshot.alert is not None, 5, "the proxy to see the alert"
    )
    assert await versions(proxy.port, 60) == {"production": 60}

    burner.idle()
    await async_wait_until(lambda: dead() or bool(inbox.of_state("resolved")), 20, "the resolved email")
    assert alert_of(client) is None
    (resolved,) = inbox.of_state("resolved")
    assert resolved.message["Subject"].startswith("[switchyard] RESOLVED: CPU ")
    assert (
        "resumed canary traffic: cleared the alert key this monitor had set" in resolved.message.get_content()
    )
    assert resolved.message["X-Switchyard-Alert"] == firing.message["X-Switchyard-Alert"]
    await async_wait_until(lambda: proxy.snapshots.snapshot.alert is None, 5, "the proxy to see the clear")
    assert (await versions(proxy.port, 60)).get("staging", 0) > 0
    assert len(inbox.messages) == 2
    assert mon.stop() == 0
    assert "Traceback" not in mon.output()
    client.close()


def test_restart_while_firing_sends_no_second_email(
    redis_url: str,
    smtp: SmtpServer,
    burner: Burner,
    start_monitor: Callable[..., MonitorProcess],
    tmp_path: Path,
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    args = monitor_args(burner, rules_file(tmp_path), "restarted")
    env = mail_env(redis_url, smtp.port)
    first = start_monitor(*args, env=env)
    until(lambda: bool(smtp.inbox.of_state("firing")), 20, "the firing email", first)
    # Delivery is at least once: a crash between the server's 250 and the removal from
    # the outbox sends the email again. Crash once the delivery is recorded.
    outbox = KEYS.monitor_outbox("restarted", "email")
    until(lambda: client.llen(outbox) == 0, 10, "the delivery to be recorded", first)
    first.stop(signal.SIGKILL)  # a crash: nothing runs on the way out
    fired_at = rule_state(client, "restarted", "cpu")["fired_at"]

    second = start_monitor(*args, env=env)
    until(lambda: "carrying on with firing rules: cpu" in second.output(), 20, "the restart", second)
    # Ten samples of the restarted monitor, all while the burner burns.
    last_at = float(str(rule_state(client, "restarted", "cpu")["last_at"]))
    until(
        lambda: float(str(rule_state(client, "restarted", "cpu")["last_at"])) > last_at + 2.0,
        20,
        "ten samples after the restart",
        second,
    )
    state = rule_state(client, "restarted", "cpu")
    assert state["phase"] == "firing" and state["fired_at"] == fired_at
    assert len(smtp.inbox.of_state("firing")) == 1
    assert alert_of(client) is not None

    burner.idle()
    until(lambda: bool(smtp.inbox.of_state("resolved")), 20, "the resolved email", second)
    assert alert_of(client) is None
    assert [m.message["X-Switchyard-State"] for m in smtp.inbox.messages] == ["firing", "resolved"]
    client.close()


def test_smtp_down_is_retried_shown_in_status_and_delivered_when_back(
    redis_url: str, burner: Burner, start_monitor: Callable[..., MonitorProcess], tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    smtp_inbox = Inbox()
    down = SmtpServer(smtp_inbox)  # its port is chosen, nothing listens there yet
    mon = start_monitor(
        *monitor_args(burner, rules_file(tmp_path), "mailless"), env=mail_env(redis_url, down.port)
    )
    until(lambda: failures(client, "mailless", "email") >= 2, 20, "failed attempts", mon)
    status = notifier(client, "mailless", "email")
    assert status["state"] == "failing"
    assert f"SMTP 127.0.0.1:{down.port}: ConnectionRefusedError" in str(status["last_error"])
    # The kill switch does not wait for email.
    assert alert_of(client) is not None
    shown = status_cli(redis_url)
    assert "email           FAILING: SMTP 127.0.0.1" in shown and "1 waiting" in shown, shown

    down.start()
    try:
        until(lambda: bool(smtp_inbox.of_state("firing")), 20, "the email once SMTP is back", mon)
        until(lambda: notifier(client, "mailless", "email").get("state") == "ok", 10, "status ok", mon)
        assert client.llen(KEYS.monitor_outbox("mailless", "email")) == 0
        burner.idle()
        until(lambda: bool(smtp_inbox.of_state("resolved")), 20, "the resolved email", mon)
        assert len(smtp_inbox.messages) == 2
    finally:
        down.stop()
    assert "Traceback" not in mon.output()
    client.close()


def status_cli(redis_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "status", "--redis-url", redis_url, *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
