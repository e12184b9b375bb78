"""A droplet's way to packages: a tinyproxy on the host side of its veth, allowing only
the droplet's address. The droplet's apt and pip are pointed at it (firstboot.py); the
host does not forward, so nothing else outside is reachable from it."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import TYPE_CHECKING

from tests.freshos.reaper import CHILDREN

if TYPE_CHECKING:
    from tests.freshos.droplet import Droplet

PROXY_PORT = 3128


def start_package_proxy(droplet: Droplet) -> None:
    """tinyproxy on the host side of the droplet's veth, for its apt and pip only."""
    conf = droplet.home / "tinyproxy.conf"
    conf.write_text(
        f"Port {PROXY_PORT}\nListen {droplet.host_ip}\nTimeout 600\nMaxClients 50\n"
        f'Allow {droplet.ip}\nLogLevel Warning\nLogFile "{droplet.home / "tinyproxy.log"}"\n'
        f'PidFile "{droplet.home / "tinyproxy.pid"}"\nDisableViaHeader Yes\n'
    )
    with (droplet.home / "tinyproxy.err").open("ab") as err:
        proc = subprocess.Popen(
            ["tinyproxy", "-d", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    CHILDREN[proc.pid] = proc
    droplet.proxy_pid = proc.pid
    droplet.save()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((droplet.host_ip, PROXY_PORT), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                said = (droplet.home / "tinyproxy.err").read_text(errors="replace")
                raise RuntimeError(
                    f"tinyproxy on {droplet.host_ip}:{PROXY_PORT} did not start: {said}"
                ) from None
            time.sleep(0.05)
