"""What a cloud's first boot gives a new droplet, written into its root before it boots:
its name, machine id, host keys and root's authorized key; and the test environment's
part: packages only through the host side's proxy, HTTPS trusting the host's CAs."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from tests.freshos.caches import pip_conf

if TYPE_CHECKING:
    from tests.freshos.droplet import Droplet

HOST_CAS = (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/usr/local/share/ca-certificates"))


def personalise(droplet: Droplet, public_key: str) -> None:
    """What a cloud's first boot gives a new server: name, identity, host keys, root's key."""
    root = droplet.merged
    (root / "etc/hostname").write_text(f"{droplet.name}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {droplet.name}\n::1 localhost\n")
    (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    (ssh_dir / "authorized_keys").chmod(0o600)
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    done = subprocess.run(["ssh-keygen", "-A", "-f", str(root)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"ssh-keygen -A -f {root} failed ({done.returncode}): {done.stderr.strip()}")
    host_key = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
    Path(droplet.known_hosts).write_text(f"{droplet.ip} {' '.join(host_key)}\n")
    # The test environment's part: packages only through the proxy, HTTPS trusting the host's CAs.
    (root / "etc/apt/apt.conf.d/80switchyard-test-proxy").write_text(
        f'Acquire::http::Proxy "{droplet.proxy_url}/";\nAcquire::https::Proxy "{droplet.proxy_url}/";\n'
    )
    (root / "etc/environment").write_text(
        f"http_proxy={droplet.proxy_url}\nhttps_proxy={droplet.proxy_url}\n"
        f"HTTP_PROXY={droplet.proxy_url}\nHTTPS_PROXY={droplet.proxy_url}\nno_proxy=localhost,127.0.0.1\n"
    )
    (root / "etc/pip.conf").write_text(pip_conf())
    bundle, local = HOST_CAS
    if bundle.is_file():
        (root / "etc/ssl/certs/ca-certificates.crt").write_bytes(bundle.read_bytes())
    for cert in local.glob("*.crt") if local.is_dir() else ():
        (root / "usr/local/share/ca-certificates" / cert.name).write_bytes(cert.read_bytes())
