"""A real sshd on 127.0.0.1 (and 127.0.0.2): the droplets' stand-in Ansible logs in to."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.wait import wait_until

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


@contextlib.contextmanager
def run_sshd() -> Iterator[SshServer]:
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
