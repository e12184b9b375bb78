"""Host-side caches the fresh-OS droplets share, so each one does not fetch the same
packages again: a wheel directory and an apt archive.

The wheels are the ones an app server installs (the monitor's requirements and the
sample app's), downloaded once by the host's pip into a directory keyed by those
requirements and bind-mounted read-only into every droplet, whose pip finds them
there (`find-links` and `no-index` in its /etc/pip.conf). The apt archive is one directory
bind-mounted as every droplet's /var/cache/apt/archives: apt still resolves every
package against Debian's archive through the proxy, but a .deb it already holds (and
whose checksum matches) is not downloaded again. The droplets stay fresh: nothing is
installed in them before the playbooks run.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
from pathlib import Path

import yaml

from tests.freshos.rootfs import CACHE, RootfsError, published

ROOT_DIR = Path(__file__).resolve().parents[2]
MONITOR_REQUIREMENTS = ROOT_DIR / "requirements-monitor.txt"
APP_DEFAULTS = ROOT_DIR / "playbooks/roles/app/defaults/main.yml"
# Where the droplet sees them.
WHEELS_IN_DROPLET = "/var/cache/switchyard-tests/wheels"
APT_ARCHIVES_IN_DROPLET = "/var/cache/apt/archives"
DOWNLOAD_TIMEOUT_S = 600.0
# The host's pip judges environment markers by the host's Python; the droplet's is older
# (bookworm's 3.11.2): what the requirements need only there, by hand.
DROPLET_ONLY = ("async-timeout>=4.0.3",)  # redis, below Python 3.11.3


def requirements() -> list[str]:
    """What an app server's pip installs: the monitor's pins, then the sample app's."""
    lines = [line.split("#", 1)[0].strip() for line in MONITOR_REQUIREMENTS.read_text().splitlines()]
    app = yaml.safe_load(APP_DEFAULTS.read_text())["switchyard_app_requirements"]
    return [line for line in lines if line] + [str(r) for r in app] + list(DROPLET_ONLY)


def ensure_wheels(cache: Path = CACHE) -> Path:
    """The wheel directory for today's requirements, downloaded on first use."""
    wanted = requirements()
    final = cache / f"wheels-{hashlib.sha256(chr(10).join(wanted).encode()).hexdigest()[:16]}"
    if (final / ".complete").exists():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"{final.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".complete").exists():
            return final
        with published(final) as building:
            command = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d"]
            done = subprocess.run(
                [*command, str(building), *wanted],
                capture_output=True,
                text=True,
                timeout=DOWNLOAD_TIMEOUT_S,
            )
            if done.returncode != 0:
                raise RootfsError(f"pip download {' '.join(wanted)} failed: {done.stderr.strip()[-1500:]}")
            (building / ".complete").write_text("\n".join(wanted) + "\n")
    return final


def apt_archives(cache: Path = CACHE) -> Path:
    path = cache / "apt-archives"
    (path / "partial").mkdir(parents=True, exist_ok=True)
    return path


def pip_conf() -> str:
    """The droplet's /etc/pip.conf: the shared wheels only. With the index as well, pip
    asks it about every package through the proxy even when the wheel is here (measured:
    half a minute per virtualenv). `PIP_CONFIG_FILE=/dev/null` reaches the index."""
    return f"[global]\nfind-links = {WHEELS_IN_DROPLET}\nno-index = true\n"
