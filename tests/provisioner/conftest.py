"""Provisioner fixtures: a real sshd on 127.0.0.1 standing in for a droplet's, the
stand-in DigitalOcean API, and the provisioner's parts built from a real config.

Every app process the playbooks start is ended here by the pid it wrote.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provisioner.app import Parts, build
from provisioner.config import ProvisionerConfig, load_config
from provisioner.local import app_pid
from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support.ports import free_port
from tests.support.wait import wait_until

BIN_DIR = Path(sys.executable).parent
TOKEN = "dop_v1_" + "stand-in-token-0123456789"  # assembled: no scanner should take it for a real one
FINGERPRINT = "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"
SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshServer:
    port: int
    key: Path  # a private key root may log in with
    other_key: Path  # a key sshd does not accept


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """sshd on a free port of 127.0.0.1 and 127.0.0.2: the 'droplets' Ansible logs in to."""
    if not os.path.exists(SSHD):
        pytest.fail("sshd is not installed: run `bash .ci/run` or apt-get install openssh-server")
    # Privilege separation needs this directory; the package's service would create it.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="sy-sshd-"))
    for name in ("host", "client", "stranger"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)], check=True, timeout=30
        )
    (home / "authorized_keys").write_text((home / "client.pub").read_text())
    (home / "authorized_keys").chmod(0o600)
    port = free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nListenAddress 127.0.0.2\n"
        f"HostKey {home / 'host'}\nAuthorizedKeysFile {home / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"UsePAM no\nStrictModes no\nPidFile {home / 'sshd.pid'}\nLogLevel ERROR\n"
    )
    log = (home / "sshd.log").open("wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")], stdout=log, stderr=log)
    try:
        wait_until(lambda: _banner(port) or proc.poll() is not None, 10, f"sshd on port {port}")
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {(home / 'sshd.log').read_text()}")
        yield SshServer(port, home / "client", home / "stranger")
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def fake_do(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDigitalOcean]:
    fake = FakeDigitalOcean(token=TOKEN, boot_s=0.3)
    url = await fake.start()
    # python-digitalocean's internal objects read the endpoint only from here: should
    # anything bypass the adapter, it still reaches the stand-in, never the real API.
    monkeypatch.setenv("DIGITALOCEAN_END_POINT", url)
    yield fake
    await fake.stop()
    assert fake.violations == [], "the DigitalOcean API contract was violated:\n" + "\n".join(fake.violations)


def stop_apps(root: Path) -> None:
    """End every app a playbook started under `root`, by the pid file it wrote."""
    for marker in root.glob("**/shared/app.pid"):
        server_dir = marker.parent.parent
        pid = app_pid(server_dir)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_until(_gone(server_dir, pid), 10, f"app {pid} to stop")


def _gone(server_dir: Path, pid: int) -> Callable[[], bool]:
    return lambda: app_pid(server_dir) != pid


PartsFactory = Callable[..., Awaitable[Parts]]


@pytest.fixture
async def make_parts(redis_url: str, tmp_path: Path) -> AsyncIterator[PartsFactory]:
    """Build the provisioner's parts from a config: defaults suited to tests, then `settings`."""
    made: list[Parts] = []

    async def make(extravars: dict[str, object] | None = None, **settings: Any) -> Parts:
        env = {"DIGITALOCEAN_TOKEN": settings.pop("token")} if "token" in settings else {}
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "local_dir": str(tmp_path / "servers"),
            "local_python": sys.executable,
            "worker_id": "test-worker",
            "health_timeout_s": 10.0,
            "poll_interval_s": 0.05,
            "digitalocean_api_backoff_s": 0.01,
            "digitalocean_api_retries": 2,
            "digitalocean_api_timeout_s": 5.0,
            "cooldown_s": 0,
            "scale_in_cooldown_s": 0,
        }
        values.update(settings)
        config: ProvisionerConfig = load_config(env=env, base=values)
        parts = build(config, bin_dir=BIN_DIR, actor="provisioner:test", extravars=extravars)
        made.append(parts)
        return parts

    yield make
    for parts in made:
        await parts.close()
    stop_apps(tmp_path)
