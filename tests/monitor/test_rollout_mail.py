"""Rollout notices by email: the proxy's rollout code queues them in a monitored host's
email outbox (rollout_email_host) in the transaction that records the step, and that
host's monitor, a real `python -m monitor run`, mails them through a real SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from proxy.rollout import operate
from proxy.rollout.model import Plan
from state import KeySpace, StateStore, connect
from state.rollouts import RolloutStore
from tests.support.mail import SmtpServer
from tests.support.monitor import MonitorProcess, mail_env
from tests.support.wait import eventually


async def test_an_aborted_rollout_is_mailed_by_the_hosts_monitor(
    redis_url: str, smtp: SmtpServer, start_monitor: Callable[..., MonitorProcess], tmp_path: Path
) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text("retry_base_s = 0.2\n[rules.cpu]\nenabled = false\n[rules.mem]\nenabled = false\n")
    mon = start_monitor(
        "--role", "proxy", "--name", "edge-1", "--interval-s", "0.2", "--source", "system",
        "--config", str(config), env=mail_env(redis_url, smtp.port),
    )  # fmt: skip
    client = connect(redis_url)
    try:
        store = StateStore(client, KeySpace(), actor="test")
        rollouts = RolloutStore(client, KeySpace(), actor="test", email_host="edge-1")
        await store.add_backend("production", "http://127.0.0.1:9")
        await store.add_backend("staging", "http://127.0.0.1:10")
        await operate.start(rollouts, store, Plan(steps=(10, 100), step_s=600), "abc123")
        await operate.act(rollouts, store, "abort", "the checkout page is blank")

        def mailed() -> bool:
            assert mon.proc.poll() is None, mon.output()
            return bool(smtp.inbox.of_state("aborted"))

        await eventually(mailed, 20, "the rollout email", interval_s=0.05, detail=mon.output)
    finally:
        await client.aclose()
    [mail] = smtp.inbox.of_state("aborted")
    assert (
        "rollout" in mail.message["Subject"]
        and "aborted: the checkout page is blank" in mail.message["Subject"]
    )
    text = mail.message.get_content()
    assert "weight 0" in text and "python -m proxy rollout status" in text
    assert mon.stop() == 0 and "Traceback" not in mon.output()
