"""Keeps one droplet's systemd-nspawn running across the reboots its OS asks for.

systemd-nspawn --boot exits with 133 when the container's systemd reboots (the
systemd-nspawn@.service unit restarts it on that status); without systemd on
the host this loop does the same. SIGTERM is passed on to nspawn, which shuts
the container down in order, and then ends the loop.

    python -m tests.freshos.supervisor PIDFILE -- systemd-nspawn ARGS...
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

REBOOT_STATUS = 133


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m tests.freshos.supervisor PIDFILE -- COMMAND...", file=sys.stderr)
        return 2
    pidfile, command = Path(argv[0]), argv[2:]
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        pidfile.write_text(f"{child.pid}\n")
        if stopping:  # the signal came while it was starting
            child.send_signal(signal.SIGTERM)
        status = child.wait()
        if stopping or status != REBOOT_STATUS:
            pidfile.unlink(missing_ok=True)
            return status
        print("container rebooted: starting it again", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
