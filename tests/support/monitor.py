"""The monitor under test: `python -m monitor run` as a child, a CPU burner, its
settings, and readers of what it wrote to Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from state import KeySpace
from tests.support import ROOT
from tests.support.wait import wait_until

BURNER = Path(__file__).with_name("burner.py")
KEYS = KeySpace()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any monitor, mail or Redis setting, plus `extra`."""
    own = ("MONITOR_", "SMTP_", "ALERT_", "PROXY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own) and k != "REDIS_URL"}
    env.update(extra)
    return env


class MonitorProcess:
    """`python -m monitor run ...` with its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], out: Path) -> None:
        self.out = out
        with out.open("ab") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", *args],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@dataclass
class Burner:
    proc: subprocess.Popen[bytes]
    flag: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def idle(self) -> None:
        self.flag.unlink(missing_ok=True)


def until(
    predicate: Callable[[], bool], timeout_s: float, what: str, proc: MonitorProcess | None = None
) -> None:
    """wait_until that stops early, with the monitor's output, if the monitor died."""

    def alive() -> None:
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"the monitor exited ({proc.proc.returncode}):\n{proc.output()}")

    def output() -> str:
        return f"\nmonitor output:\n{proc.output()}" if proc is not None else ""

    wait_until(predicate, timeout_s, what, interval_s=0.02, alive=alive, detail=output)


def rules_file(tmp_path: Path, extra: str = "") -> Path:
    file = tmp_path / "monitor.toml"
    file.write_text(
        "retry_base_s = 0.2\nretry_max_s = 1.0\n"
        "[rules.cpu]\nthreshold = 20\nrecover_below = 10\nfor_samples = 3\n"
        "[rules.mem]\nenabled = false\n" + extra
    )
    return file


def mail_env(redis_url: str, smtp_port: int, **extra: str) -> dict[str, str]:
    """A plain local relay by default; `extra` overrides."""
    base = {
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "MONITOR_SMTP_SECURITY": "none",
        "ALERT_FROM": "switchyard@example.com",
        "ALERT_TO": "ops@example.com",
    }
    return clean_env(**{**base, **extra})


def monitor_args(burner: Burner, config: Path, name: str) -> list[str]:
    return ["--role", "proxy", "--name", name, "--interval-s", "0.2", "--source", f"pid:{burner.pid}",
            "--config", str(config)]  # fmt: skip


def alert_of(client: redis.Redis) -> dict[str, object] | None:
    raw = client.get(KEYS.alert)
    return None if raw is None else dict(json.loads(raw))


def rule_state(client: redis.Redis, host: str, rule: str) -> dict[str, object]:
    raw = client.hget(KEYS.monitor_rules(host), rule)
    return {} if raw is None else dict(json.loads(raw))


def notifier(client: redis.Redis, host: str, channel: str) -> dict[str, object]:
    raw = client.hget(KEYS.monitor_notifiers(host), channel)
    return {} if raw is None else dict(json.loads(raw))


def failures(client: redis.Redis, host: str, channel: str) -> int:
    """Consecutive failed deliveries on a channel, 0 before the first status."""
    return int(str(notifier(client, host, channel).get("failures", 0)))
