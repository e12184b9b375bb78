"""Real parts for the monitor: an SMTP server (aiosmtpd), TLS certificates made
with openssl, a CPU-burning process, and `python -m monitor run` as a child.
Every process is ended by the PID started here."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from state import KeySpace
from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.wait import wait_until

BURNER = Path(__file__).with_name("burner.py")
SMTP_USER, SMTP_PASSWORD = "switchyard", "pw-Zq81-never-logged"
KEYS = KeySpace()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: str


@dataclass
class Inbox:
    """What the SMTP server accepted, in order."""

    messages: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(
                Received(
                    str(envelope.mail_from), list(envelope.rcpt_tos), parsed, raw.decode("utf-8", "replace")
                )
            )
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        with self.lock:
            self.logins.append("ok" if ok else "refused")
        # handled=False: the server itself answers 535 to a refused login.
        return AuthResult(success=ok, handled=False)

    def of_state(self, state: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.message["X-Switchyard-State"] == state]

    def wait_for(self, state: str, count: int = 1, timeout_s: float = 20.0) -> list[Received]:
        wait_until(lambda: len(self.of_state(state)) >= count, timeout_s, f"{count} {state} email(s)")
        return self.of_state(state)


class SmtpServer:
    """An aiosmtpd Controller on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self, inbox: Inbox, port: int | None = None, **kwargs: Any) -> None:
        self.inbox = inbox
        self.port = port or free_port()
        self.kwargs = kwargs
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.inbox.authenticate,
            server_hostname="smtp.test",
            **self.kwargs,
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain SMTP server (no TLS, no login), as a local relay would be."""
    server = SmtpServer(Inbox()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key; the certificate is also the CA file."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


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


@pytest.fixture
def start_monitor(tmp_path: Path) -> Iterator[Callable[..., MonitorProcess]]:
    started: list[MonitorProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> MonitorProcess:
        proc = MonitorProcess(list(args), env or clean_env(), tmp_path / "monitor.out")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop(signal.SIGKILL)


@dataclass
class Burner:
    proc: subprocess.Popen[bytes]
    flag: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def idle(self) -> None:
        self.flag.unlink(missing_ok=True)


@pytest.fixture
def burner(tmp_path: Path) -> Iterator[Burner]:
    """A process burning one core until `idle()`; it exits by itself within 60 s."""
    flag = tmp_path / "burn"
    flag.touch()
    proc = subprocess.Popen([sys.executable, str(BURNER), str(flag), "60"])
    yield Burner(proc, flag)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def until(
    predicate: Callable[[], bool], timeout_s: float, what: str, proc: MonitorProcess | None = None
) -> None:
    """wait_until that stops early, with the monitor's output, if the monitor died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"the monitor exited ({proc.proc.returncode}):\n{proc.output()}")
        time.sleep(0.02)
    output = f"\nmonitor output:\n{proc.output()}" if proc is not None else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{output}")


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
