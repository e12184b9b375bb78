"""The proxy under test: its config, its CLI and `serve` as a child process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from proxy.config import Address, ProxyConfig
from tests.support import ROOT
from tests.support.ports import free_port, free_port_run
from tests.support.procs import stop_process
from tests.support.wait import wait_until


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
            # Empty: REDIS_URL from `env`, as a URL with a password is given in production.
            *(["--redis-url", redis_url] if redis_url else []),
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
        return stop_process(self.proc, timeout_s)

    def cleanup(self) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)
