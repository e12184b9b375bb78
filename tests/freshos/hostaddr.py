"""An address of the host's own for a fresh-OS test: the controller's private address.

A link `syfoc<k>` holding 10.232.k.1/32 (one end of a veth pair whose other end stays
unused on the host: this kernel has no dummy links); creating it is the claim (it
fails if another test holds it). A droplet reaches it through its default route (the
host side of its veth; the host accepts any of its own addresses there), so a Redis
bound to it serves the droplets. From the host it is a second source address, which
the droplets' firewalls do not know: a connection from it is a stranger's.
Deleting the link removes the address.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from tests.freshos.droplet import DropletError, _ip

NETWORK = ipaddress.IPv4Network("10.232.0.0/16")
MAX_INDEX = 250


@dataclass(frozen=True)
class HostAddress:
    link: str
    ip: str

    def routes_via(self, destination: str) -> str | None:
        """The link a packet from this address to `destination` leaves by."""
        routes = json.loads(_ip("-j", "route", "get", destination, "from", self.ip))
        return routes[0].get("dev") if routes else None

    def release(self) -> None:
        # Its peer goes with it.
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=30)


def claim() -> HostAddress:
    for k in range(1, MAX_INDEX):
        link, ip = f"syfoc{k}", str(NETWORK.network_address + 256 * k + 1)
        done = subprocess.run(
            ["ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            if "exists" in done.stderr:
                continue
            raise DropletError(f"ip link add {link}: {done.stderr.strip()}")
        address = HostAddress(link, ip)
        try:
            taken = json.loads(_ip("-j", "route", "show", "to", "match", ip))
            if [r for r in taken if r["dst"] != "default"]:
                raise DropletError(f"{ip} is already routed on this host ({taken}): pick another range")
            _ip("addr", "add", f"{ip}/32", "dev", link)
            _ip("link", "set", f"{link}p", "up")
            _ip("link", "set", link, "up")
        except BaseException:
            address.release()
            raise
        return address
    raise DropletError(f"no free host address below index {MAX_INDEX}: remove stale syfoc* links")
