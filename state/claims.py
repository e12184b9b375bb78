"""The kill switch as several monitors hold it: one claim per host.

Two proxy hosts each run a monitor; either may stop the canary. A host's claim is
kept in a hash beside the alert, and both change in one transaction of
`StateStore._mutate` (so the proxies hear of it). The alert a claim set is handed
to a remaining claim when its own host resolves, and cleared when the last claim
is released. An alert someone else set (a human) is never cleared by a claim.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

from state.model import Alert
from state.monitoring import parse_host_name
from state.store import Change, StateStore

Claims = dict[str, dict[str, Any]]


class AlertClaims(StateStore):
    """A StateStore whose alert writes go through per-host claims."""

    async def claim(self, host: str, reason: str) -> Change:
        """Hold a claim for `host`; set the alert if none is set (the first claim keeps it)."""
        host = parse_host_name(host)
        mine = {"by": self.actor, "reason": reason, "at": time.time()}

        def after_of(before: dict[str, Any]) -> dict[str, Any]:
            claims: Claims = dict(before["claims"])
            claims.setdefault(host, mine)
            return {"alert": before["alert"] or mine, "claims": claims}

        return await self._claims("alert", after_of)

    async def release(self, host: str) -> Change:
        """Drop `host`'s claim. The alert a claim set passes to a remaining claim, or is
        cleared with the last one."""
        host = parse_host_name(host)

        def after_of(before: dict[str, Any]) -> dict[str, Any]:
            claims: Claims = {h: c for h, c in before["claims"].items() if h != host}
            alert = before["alert"]
            # An alert this monitor set before claims existed is its own too.
            holders = {c["by"] for c in before["claims"].values()} | {self.actor}
            if (
                alert is not None
                and alert["by"] in holders
                and alert["by"] not in {c["by"] for c in claims.values()}
            ):
                alert = None
                if claims:
                    heir = claims[min(claims)]
                    alert = {"by": heir["by"], "reason": heir["reason"], "at": before["alert"]["at"]}
            return {"alert": alert, "claims": claims}

        return await self._claims("alert", after_of)

    async def claims(self) -> Claims:
        raw = await self._call(lambda: self.redis.hgetall(self.keys.alert_claims))
        return _decode(raw)

    async def _claims(self, what: str, after_of: Any) -> Change:
        alert_key, claims_key = self.keys.alert, self.keys.alert_claims

        async def read(p: aioredis.client.Pipeline) -> dict[str, Any]:
            raw = await p.get(alert_key)
            current = None if raw is None else Alert.decode(raw)
            return {
                "alert": None
                if current is None
                else {"by": current.by, "reason": current.reason, "at": current.at},
                "claims": _decode(await p.hgetall(claims_key)),
            }

        def apply(p: aioredis.client.Pipeline, after: dict[str, Any]) -> None:
            if after["alert"] is None:
                p.delete(alert_key)
            else:
                p.set(alert_key, json.dumps(after["alert"]))
            p.delete(claims_key)
            if after["claims"]:
                p.hset(claims_key, mapping={h: json.dumps(c) for h, c in after["claims"].items()})

        return await self._mutate(what, (alert_key, claims_key), read, apply, after_of)


def _decode(raw: dict[str, str]) -> Claims:
    found: Claims = {}
    for host, text in raw.items():
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("by"), str):
            found[str(host)] = data
    return found
