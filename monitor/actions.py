"""What the monitor does about a rule besides telling people: the canary kill
switch and scale requests, both through `state/`. Each returns one line for
the notice saying what happened.

The alert key records who set it. Each host's monitor holds a claim on it
(state/claims.py): the first claim sets it as `monitor:<host>`, and it is cleared
when the last claim resolves, so one proxy host's resolve never clears an alert
another host's monitor still needs, and a human's alert is never cleared by a machine.
"""

from __future__ import annotations

from monitor.notice import pct
from monitor.rules import Action, Event
from state import ScaleQueue, StateError
from state.claims import AlertClaims


class Actions:
    def __init__(self, store: AlertClaims, scale: ScaleQueue, *, host: str, actor: str) -> None:
        self.store = store
        self.scale = scale
        self.host = host
        self.actor = actor

    async def run(self, event: Event, *, keep_alert: bool = False) -> tuple[list[str], bool]:
        """Do the rule's actions for `event`: (one line per action, whether all succeeded).

        `keep_alert`: another rule of this host that stops the canary is still
        firing, so a resolve leaves the alert key alone.
        """
        lines: list[str] = []
        ok = True
        for action in event.rule.actions:
            try:
                lines.append(await self._one(action, event, keep_alert))
            except StateError as exc:
                ok = False
                lines.append(f"FAILED to {_verb(action, event)}: {exc} (retrying)")
        return lines, ok

    async def _one(self, action: Action, event: Event, keep_alert: bool) -> str:
        if action == "stop_canary":
            if event.kind == "firing":
                return await self._stop_canary(event)
            if event.kind == "resolved":
                return await self._resume_canary(keep_alert)
            return await self._canary_now()
        if event.kind == "firing":
            req = await self.scale.request("production", self._reason(event))
            if req is None:
                return "a request for one more production server is already open: not asked again"
            return f"asked the provisioner for one more production server (request {req.request[:12]})"
        if event.kind == "resolved":
            return "no scale-in from here: the provisioner's own policy removes servers"
        pending = await self.scale.pending("production")
        return (
            "the request for one more production server is still open"
            if pending
            else "no scale request open (the last one was served)"
        )

    async def _stop_canary(self, event: Event) -> str:
        change = await self.store.claim(self.host, self._reason(event))
        alert = _alert(change.before)
        if alert is None:
            return "stopped canary traffic: set the alert key, every request goes to production"
        by = alert.get("by", "unknown")
        return f"canary traffic was already stopped (alert key set by {by}): left as it is"

    async def _resume_canary(self, keep_alert: bool) -> str:
        if keep_alert:
            return "left the alert key set: another rule of this host that stops the canary still fires"
        change = await self.store.release(self.host)
        before, after = _alert(change.before), _alert(change.after)
        if after is None:
            if before is None:
                return "the alert key was already clear (someone cleared it while this rule fired)"
            return (
                "resumed canary traffic: cleared the alert key this monitor had set (no other host claims it)"
            )
        holders = sorted({str(c.get("by")) for c in _claims(change.after).values() if isinstance(c, dict)})
        if after.get("by") in holders:
            return f"left the alert key set: still claimed by {', '.join(holders)}"
        return (
            f"left the alert key set: {after.get('by', 'unknown')} set it, not this monitor;"
            " clear it with `python -m proxy alert clear` when it is safe"
        )

    async def _canary_now(self) -> str:
        alert = (await self.store.read_snapshot()).alert
        if alert is None:
            return "canary traffic flows: the alert key was cleared while this rule fires (not set again)"
        return f"canary traffic still stopped (alert key set by {alert.by})"

    def _reason(self, event: Event) -> str:
        rule = event.rule
        value = pct(round(event.value, 1))
        return f"{self.host}: {rule.metric} {value} > {pct(rule.threshold)} (rule {rule.name})"


def _alert(value: object) -> dict[str, object] | None:
    alert = value.get("alert") if isinstance(value, dict) else None
    return alert if isinstance(alert, dict) else None


def _claims(value: object) -> dict[str, object]:
    claims = value.get("claims") if isinstance(value, dict) else None
    return claims if isinstance(claims, dict) else {}


def _verb(action: Action, event: Event) -> str:
    if action == "stop_canary":
        return "clear the alert key" if event.kind == "resolved" else "set the alert key"
    return "ask for one more production server"
