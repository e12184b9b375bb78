"""The cached base root a fresh-OS droplet boots from: one debootstrap per machine.

Built into a temporary directory beside the cache and renamed into place, so a
killed build never leaves a half root behind; an flock keeps two pytest
processes from building it twice. Nothing the playbooks install (python3-venv,
nftables, ...) is in it: the droplet stays as fresh as a new server.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What a new Debian droplet has before anyone configures it; systemd and dbus make it bootable.
PACKAGES = (
    "openssh-server",
    "python3",
    "systemd",
    "systemd-sysv",
    "dbus",
    "ca-certificates",
    "iproute2",
    "sudo",
    "netbase",
    "curl",
    "less",
)
SOURCES = (
    f"deb {MIRROR} {SUITE} main\n"
    f"deb {MIRROR} {SUITE}-updates main\n"
    f"deb http://deb.debian.org/debian-security {SUITE}-security main\n"
)
# Bump when the steps after debootstrap change: a new hash means a new cached root.
RECIPE = "2"
CACHE = Path(os.environ.get("SWITCHYARD_FRESHOS_CACHE", "/var/cache/switchyard-tests"))
BUILD_TIMEOUT_S = 900.0
ATTEMPTS = 2  # a mirror's hiccup on a new machine should not cost the fresh-OS tests


class RootfsError(RuntimeError):
    """The base root could not be built; the message says which step and why."""


def unavailable() -> str | None:
    """Why fresh-OS droplets cannot run here, or None."""
    if os.geteuid() != 0:
        return "fresh-OS droplets need root (network namespaces, mounts, systemd-nspawn)"
    for tool in ("systemd-nspawn", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: run tools/system-packages"
    return None


@contextmanager
def published(final: Path) -> Iterator[Path]:
    """A directory built beside `final` (the `with` body fills it) and renamed to it whole,
    mode 0755, or removed if the body raised: no reader ever sees it half-made."""
    building = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield building
        building.chmod(0o755)
        os.rename(building, final)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)


def root_path(cache: Path = CACHE) -> Path:
    digest = hashlib.sha256(f"{SUITE} {MIRROR} {','.join(PACKAGES)} {SOURCES} {RECIPE}".encode())
    return cache / f"rootfs-{digest.hexdigest()[:16]}"


def ensure_base_root(cache: Path = CACHE) -> tuple[Path, float]:
    """The cached root (built on first use) and the seconds this call spent building it."""
    final = root_path(cache)
    if (final / "etc" / "os-release").exists():
        return final, 0.0
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"{final.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other process is building it: wait, then use it
        if (final / "etc" / "os-release").exists():
            return final, 0.0
        started = time.monotonic()
        for attempt in range(1, ATTEMPTS + 1):
            building = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=cache))
            try:
                _debootstrap(building)
                _prepare(building)
                os.rename(building, final)
                break
            except RootfsError:
                if attempt == ATTEMPTS:
                    raise
            finally:
                if building.exists():
                    # A killed debootstrap leaves its /proc (and more) mounted inside: a
                    # removal must never walk into a mount.
                    _unmount_under(building)
                    shutil.rmtree(building, ignore_errors=True)
        return final, time.monotonic() - started


def _debootstrap(target: Path) -> None:
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(target),
        MIRROR,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise RootfsError(f"debootstrap {SUITE} took over {BUILD_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise RootfsError(f"debootstrap {SUITE} into {target} failed ({done.returncode}):\n{tail}")


def _prepare(root: Path) -> None:
    root.chmod(0o755)  # mkdtemp made it 0700: no user but root could reach anything in it
    (root / "etc/apt/sources.list").write_text(SOURCES)
    # Each droplet gets its own host keys and machine-id, as a new server would.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def _unmount_under(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):  # the deepest first
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30, check=False)


def main() -> int:
    """`make unit` builds the root before pytest runs: its first build on a new machine
    (1-4 min) must not count against the first fresh-OS test's timeout."""
    reason = unavailable()
    if reason is not None:
        print(f"fresh-OS root: not built ({reason}); those tests skip")
        return 0
    try:
        root, built_s = ensure_base_root()
    except RootfsError as exc:
        print(f"fresh-OS root: {exc}")
        return 1
    print(
        f"fresh-OS root: built in {built_s:.0f} s at {root}"
        if built_s
        else f"fresh-OS root: cached at {root}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
