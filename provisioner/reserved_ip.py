"""`python -m provisioner reserved-ip assign|unassign|show`: move a DigitalOcean reserved
IP to a droplet, for keepalived's notify script on the proxy that becomes master
(playbooks/roles/proxy_ha).

Plain HTTP through the standard library: python-digitalocean knows only the older
`/v2/floating_ips` paths (its `FloatingIP`), and this runs in a short process of its
own, so blocking calls are fine. The token comes from DIGITALOCEAN_TOKEN or a 0600
file (`--token-file`), and reaches no log line, argv or error text.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import stat
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.config import ProvisionerConfig
from provisioner.errors import ConfigError, ProvisionerError

# The droplet's own id, from the metadata service every droplet reaches.
METADATA_ID_URL = "http://169.254.169.254/metadata/v1/id"


class ReservedIPError(ProvisionerError):
    """The API refused or did not answer; the message names the IP and the status."""


@dataclass(frozen=True, slots=True)
class ReservedIPs:
    end_point: str  # ends in /v2/
    token: str = field(repr=False)
    timeout_s: float = 30.0

    def show(self, ip: str) -> dict[str, Any]:
        return dict(self._call("GET", f"reserved_ips/{ip}", ip)["reserved_ip"])

    def assign(self, ip: str, droplet_id: int, *, wait_s: float = 60.0) -> dict[str, Any]:
        """Assign `ip` to `droplet_id` (taking it from whichever droplet has it) and wait
        for the action to complete; the completed action."""
        current = (self.show(ip).get("droplet") or {}).get("id")
        if current == droplet_id:
            return {"status": "completed", "type": "assign", "note": "already assigned"}
        return self._act(ip, {"type": "assign", "droplet_id": droplet_id}, wait_s)

    def unassign(self, ip: str, *, wait_s: float = 60.0) -> dict[str, Any]:
        if not self.show(ip).get("droplet"):
            return {"status": "completed", "type": "unassign", "note": "not assigned"}
        return self._act(ip, {"type": "unassign"}, wait_s)

    def _act(self, ip: str, body: dict[str, Any], wait_s: float) -> dict[str, Any]:
        action = dict(self._call("POST", f"reserved_ips/{ip}/actions", ip, body)["action"])
        deadline = time.monotonic() + wait_s
        while action.get("status") == "in-progress":
            if time.monotonic() >= deadline:
                raise ReservedIPError(
                    f"reserved IP {ip}: action {action.get('id')} still in progress after {wait_s:.0f}s"
                )
            time.sleep(0.5)
            action = dict(self._call("GET", f"reserved_ips/{ip}/actions/{action['id']}", ip)["action"])
        if action.get("status") != "completed":
            raise ReservedIPError(f"reserved IP {ip}: {body['type']} ended {action.get('status')!r}")
        return action

    def _call(self, method: str, path: str, ip: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # The end point is the config's, checked to be http(s)://.../v2/.
        request = urllib.request.Request(  # noqa: S310
            self.end_point + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310  # https end point from the config
                return dict(json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            raise ReservedIPError(
                f"reserved IP {ip}: {method} {path} answered {exc.code}: {_message(exc)}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise ReservedIPError(f"reserved IP {ip}: {method} {path} failed: {exc}") from None


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    rip = sub.add_parser("reserved-ip", parents=[common], help="move a DigitalOcean reserved IP")
    rip.add_argument("action", choices=["assign", "unassign", "show"])
    rip.add_argument("--ip", required=True, help="the reserved IPv4 address")
    rip.add_argument("--droplet-id", help="a droplet id, or `self` (this droplet, from its metadata)")
    rip.add_argument(
        "--token-file", type=Path, help="file holding the API token (mode 0600; else $DIGITALOCEAN_TOKEN)"
    )
    rip.add_argument("--wait-s", type=float, default=60.0, help="how long an action may take (default 60)")
    rip.add_argument("--metadata-url", default=METADATA_ID_URL, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, config: ProvisionerConfig) -> int:
    ip = _parse_ip(args.ip)
    api = ReservedIPs(
        config.digitalocean_end_point, _token(args.token_file, config), config.digitalocean_api_timeout_s
    )
    if args.action == "show":
        print(json.dumps(_summary(api.show(ip))))
        return 0
    if args.action == "unassign":
        done = api.unassign(ip, wait_s=args.wait_s)
        how = done.get("note") or f"action {done.get('id')}"
        print(f"reserved IP {ip}: unassigned ({how})")
        return 0
    if args.droplet_id is None:
        raise ConfigError("assign needs --droplet-id ID or --droplet-id self")
    droplet_id = _droplet_id(args.droplet_id, args.metadata_url)
    done = api.assign(ip, droplet_id, wait_s=args.wait_s)
    how = done.get("note") or f"action {done.get('id')}"
    print(f"reserved IP {ip}: assigned to droplet {droplet_id} ({how})")
    return 0


def _parse_ip(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ConfigError(f"--ip {value!r} is not an IPv4 address (a reserved IP is one)") from None


def _droplet_id(value: str, metadata_url: str) -> int:
    if value == "self":
        try:
            with urllib.request.urlopen(metadata_url, timeout=5) as response:  # noqa: S310  # link-local metadata
                value = response.read().decode().strip()
        except (urllib.error.URLError, OSError) as exc:
            raise ReservedIPError(f"this droplet's id: the metadata service did not answer ({exc})") from None
    if not (value.isascii() and value.isdigit()) or int(value) <= 0:
        raise ConfigError(f"--droplet-id {value!r} is not a droplet id: give digits or `self`")
    return int(value)


def _token(path: Path | None, config: ProvisionerConfig) -> str:
    if path is None:
        if not config.digitalocean_token:
            raise ConfigError("no DigitalOcean token: set DIGITALOCEAN_TOKEN or pass --token-file")
        return config.digitalocean_token
    try:
        info = path.stat()
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--token-file {path}: {exc.strerror}") from None
    if stat.S_IMODE(info.st_mode) & 0o077 or info.st_uid != os.getuid():
        raise ConfigError(f"--token-file {path} must be yours with mode 0600 (it holds the API token)")
    if not token:
        raise ConfigError(f"--token-file {path} is empty")
    return token


def _summary(ip: dict[str, Any]) -> dict[str, Any]:
    droplet = ip.get("droplet") or {}
    return {
        "ip": ip.get("ip"),
        "droplet_id": droplet.get("id"),
        "region": (ip.get("region") or {}).get("slug"),
        "locked": ip.get("locked"),
    }


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("message", ""))[:200]
    except (ValueError, OSError, AttributeError):
        return ""
