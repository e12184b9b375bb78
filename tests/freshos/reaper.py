"""Ending what a droplet started, by PID, each checked to be ours first.

The supervisor, nspawn and the proxy are found by their PID files and argv. The
container's own processes are found by their network namespace: the droplet's, which we
made, so whatever runs in it was started in that droplet. (Their root shows as "/" from
here, in a mount namespace of their own: no marker.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

# The processes this interpreter started, so it reaps them (a CLI run leaves them to init).
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def is_ours(pid: int, program: str, marker: str) -> bool:
    """The PID still runs `program` with an argument mentioning `marker` (our droplet's files)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [a.decode(errors="replace") for a in argv]
    return any(program in w for w in words) and any(marker in w for w in words)


def wait_gone(pid: int, timeout_s: float) -> bool:
    child = CHILDREN.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            CHILDREN[pid] = child
            return False
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not our child (the CLI started it): watch /proc instead
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
            except OSError:
                return True
        time.sleep(0.05)
    return False


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def container_inits(netns: Path) -> list[int]:
    """The PIDs (the host's) of the init of each PID namespace inside network namespace
    `netns` (its /run/netns/ file)."""
    try:
        wanted = _ns(netns)
    except OSError:
        return []  # no namespace, no container in it
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if _ns(entry / "ns/net") != wanted:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue  # gone meanwhile
        nspids = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if len(nspids) > 1 and nspids[-1] == "1":
            found.append(int(entry.name))
    return found


def end_container(netns: Path, timeout_s: float = 10.0) -> None:
    """SIGKILL the container's init: the kernel then ends every process of its namespace,
    before the init's own end (which wait_gone sees)."""
    for pid in container_inits(netns):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, timeout_s)


def _ns(path: Path) -> tuple[int, int]:
    found = os.stat(path)
    return found.st_dev, found.st_ino
