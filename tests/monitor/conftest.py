"""Real parts for the monitor: an SMTP server (aiosmtpd), TLS certificates made
with openssl, a CPU-burning process, and `python -m monitor run` as a child.
The machinery is in tests/support; every process is ended by the PID started here."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.mail import Inbox, SmtpServer
from tests.support.monitor import BURNER, Burner, MonitorProcess, clean_env


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
