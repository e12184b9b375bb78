"""The stand-in DigitalOcean API's reserved IPs, mounted by `fake_do.FakeDigitalOcean`.

A reserved IP is assigned and unassigned by an action (`POST
/v2/reserved_ips/{ip}/actions`) that stays `in-progress` for the fake's `action_s`, as
DigitalOcean's do, and then completes; the address moves when it completes, as seen by
the next read of the action or the IP. An IP with an action pending refuses another
(422), as DigitalOcean does.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.provisioner.fake_do import FakeDigitalOcean

_RESERVED = re.compile(r"^/v2/reserved_ips/([0-9.]+)(/actions(?:/(\d+))?)?$")


class FakeReservedIps:
    def __init__(self, fake: FakeDigitalOcean) -> None:
        self.fake = fake
        self.ips: dict[str, int | None] = {}  # ip -> droplet id
        self.actions: dict[int, dict[str, Any]] = {}

    def route(self, method: str, path: str, data: bytes) -> tuple[int, dict[str, Any] | None] | None:
        """The answer to a reserved-IP request; None: not one."""
        if path != "/v2/reserved_ips" and not _RESERVED.match(path):
            return None
        if path == "/v2/reserved_ips" and method == "GET":
            shown = [self.ip_view(ip) for ip in self.ips]
            return 200, {"reserved_ips": shown, "links": {}, "meta": {"total": len(shown)}}
        match = _RESERVED.match(path)
        if match is None or match.group(1) not in self.ips:
            return 404, {"id": "not_found", "message": "The resource you requested could not be found."}
        ip, actions, action_id = match.group(1), match.group(2), match.group(3)
        if not actions and method == "GET":
            return 200, {"reserved_ip": self.ip_view(ip)}
        if action_id is not None and method == "GET" and int(action_id) in self.actions:
            return 200, {"action": self.action_view(self.actions[int(action_id)])}
        if actions and action_id is None and method == "POST":
            body = json.loads(data or b"{}")
            target = body.get("droplet_id") if body.get("type") == "assign" else None
            if body.get("type") == "assign" and target not in self.fake.droplets:
                return 422, {"id": "unprocessable_entity", "message": f"Droplet {target} was not found"}
            if any(a["_ip"] == ip and time.monotonic() < a["_done_at"] for a in self.actions.values()):
                return 422, {"id": "unprocessable_entity", "message": "The reserved IP has a pending action"}
            self.fake._next_id += 2
            self.actions[self.fake._next_id] = {
                "id": self.fake._next_id, "type": f"{body.get('type')}_ip", "_ip": ip, "_to": target,
                "_done_at": time.monotonic() + self.fake.action_s,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }  # fmt: skip
            return 201, {"action": self.action_view(self.actions[self.fake._next_id])}
        return 404, {"id": "not_found", "message": f"no route {method} {path} in this stand-in"}

    def action_view(self, action: dict[str, Any]) -> dict[str, Any]:
        done = time.monotonic() >= action["_done_at"]
        if done and not action.get("_applied"):
            # The address moves when the action completes, not when it is asked for.
            action["_applied"] = True
            self.ips[action["_ip"]] = action["_to"]
        region = self.fake._template["region"]
        return {
            **{k: v for k, v in action.items() if not k.startswith("_")},
            "status": "completed" if done else "in-progress",
            "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) if done else None,
            "resource_id": int(ipaddress.IPv4Address(action["_ip"])),
            "resource_type": "reserved_ip",
            "region": region,
            "region_slug": region["slug"],
        }

    def ip_view(self, ip: str) -> dict[str, Any]:
        for action in self.actions.values():
            if action["_ip"] == ip:
                self.action_view(action)
        droplet_id = self.ips[ip]
        droplet = (
            self.fake._view(self.fake.droplets[droplet_id]) if droplet_id in self.fake.droplets else None
        )
        pending = any(a["_ip"] == ip and not a.get("_applied") for a in self.actions.values())
        return {"ip": ip, "region": self.fake._template["region"], "droplet": droplet, "locked": pending,
                "project_id": "746c6152-2fa2-11ed-92d3-27aaa54e4988"}  # fmt: skip
