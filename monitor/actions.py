"""What the monitor does about a rule besides telling people: the canary kill
switch and scale requests, both through `state/`. Each returns one line for
the notice saying what happened.

The alert key records who set it. The monitor sets it as `monitor:<host>` and
clears it only when that is still who set it, so a human's alert is never
cleared by a machine.
"""

from __future__ import annotations

from monitor.notice import pct
from monitor.rules import Action, Event
from state import ScaleQueue, StateError, StateStore


class Actions:
    def __init__(self, store: StateStore, scale: ScaleQueue, *, host: str, actor: str) -> None:
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
        change = await self.store.set_alert(self._reason(event), by=self.actor)
        if change.changed:
            return "stopped canary traffic: set the alert key, every request goes to production"
        return f"canary traffic was already stopped (alert key set by {_by(change.before)}): left as it is"

    async def _resume_canary(self, keep_alert: bool) -> str:
        if keep_alert:
            return "left the alert key set: another rule of this host that stops the canary still fires"
        change = await self.store.clear_alert(only_if_by=self.actor)
        if change.changed:
            return "resumed canary traffic: cleared the alert key this monitor had set"
        if change.after is None:
            return "the alert key was already clear (someone cleared it while this rule fired)"
        return (
            f"left the alert key set: {_by(change.after)} set it, not this monitor;"
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


def _by(value: object) -> str:
    return str(value.get("by", "unknown")) if isinstance(value, dict) else "unknown"


def _verb(action: Action, event: Event) -> str:
    if action == "stop_canary":
        return "clear the alert key" if event.kind == "resolved" else "set the alert key"
    return "ask for one more production server"
