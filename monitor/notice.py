"""A notification as data, and its text for email and chat (pure, no I/O).

A notice is built when a rule changes state and stored as JSON in the
outbox, so what is sent after a restart or an SMTP outage is what happened
then, not what is true at sending time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from monitor.rules import Event, Rule

# A rollout's notice (aborted, held, ...), queued in a host's email outbox by the proxy's
# rollout controller (state/rollouts.py): its first action is the line, the rest the verdict.
ROLLOUT_RULE = "rollout"
_KIND_WORD = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}
_METRIC_WORD = {"cpu": "CPU", "mem": "memory"}


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str  # firing, repeat or resolved
    host: str
    role: str
    source: str  # what was measured: "system" or "pid:N"
    rule: str
    metric: str
    value: float
    threshold: float
    recover_below: float
    held_for: str  # "3 samples" or "15s"
    repeat_s: float
    since: float  # when the breach began
    at: float  # when this notice was raised
    peak: float
    actions: tuple[str, ...]  # what the system did, one line each

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "actions": list(self.actions)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Notice:
        """The stored form back; ValueError if it is not a notice."""
        try:
            actions = data.get("actions", [])
            if not isinstance(actions, list):
                raise TypeError("actions is not a list")
            return cls(
                kind=str(data["kind"]),
                host=str(data["host"]),
                role=str(data["role"]),
                source=str(data["source"]),
                rule=str(data["rule"]),
                metric=str(data["metric"]),
                value=_num(data["value"]),
                threshold=_num(data["threshold"]),
                recover_below=_num(data["recover_below"]),
                held_for=str(data["held_for"]),
                repeat_s=_num(data["repeat_s"]),
                since=_num(data["since"]),
                at=_num(data["at"]),
                peak=_num(data["peak"]),
                actions=tuple(str(a) for a in actions),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a notice: {exc}") from exc


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def held_for(rule: Rule) -> str:
    if rule.for_s is not None:
        return f"{duration(rule.for_s)}"
    return f"{rule.for_samples} sample{'s' if rule.for_samples != 1 else ''}"


def from_event(event: Event, *, host: str, role: str, source: str, actions: list[str]) -> Notice:
    rule = event.rule
    return Notice(
        kind=event.kind,
        host=host,
        role=role,
        source=source,
        rule=rule.name,
        metric=rule.metric,
        value=round(event.value, 1),
        threshold=rule.threshold,
        recover_below=rule.recover_below,
        held_for=held_for(rule),
        repeat_s=rule.repeat_s,
        since=event.since,
        at=event.at,
        peak=round(event.peak, 1),
        actions=tuple(actions),
    )


def clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def duration(seconds: float) -> str:
    """0.6s, 45s, 2m05s, 3h10m: short and exact enough for a reader at 3 a.m."""
    if seconds < 10:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def pct(value: float) -> str:
    return f"{value:g}%"


def subject(n: Notice) -> str:
    if n.rule == ROLLOUT_RULE:
        return f"[switchyard] {n.actions[0] if n.actions else 'rollout ' + n.kind}"
    what = f"{_METRIC_WORD.get(n.metric, n.metric)} {pct(n.value)}"
    where = f"on {n.host} ({n.role})"
    if n.kind == "resolved":
        return f"[switchyard] RESOLVED: {what} < {pct(n.recover_below)} {where}, rule {n.rule}"
    return f"[switchyard] {_KIND_WORD.get(n.kind, n.kind.upper())}: {what} > {pct(n.threshold)} {where}"


def body(n: Notice) -> str:
    if n.rule == ROLLOUT_RULE:
        return "\n".join([*n.actions[:1], "", *(f"  {a}" for a in n.actions[1:]), "", _ROLLOUT_LOOK]) + "\n"
    measured = "whole host" if n.source == "system" else f"process {n.source.removeprefix('pid:')}"
    state = _KIND_WORD.get(n.kind, n.kind.upper())
    lines = [
        f"Rule {n.rule} on host {n.host} (role {n.role}) is {state}.",
        "",
        f"  metric      {_METRIC_WORD.get(n.metric, n.metric)} percent ({measured})",
        f"  value       {pct(n.value)} at {clock(n.at)}",
        f"  rule        fires above {pct(n.threshold)} for {n.held_for},"
        f" resolves below {pct(n.recover_below)} for {n.held_for}",
        f"  since       {clock(n.since)} (breach began, {duration(max(n.at - n.since, 0.0))} ago)",
        f"  peak        {pct(n.peak)}",
        "",
        "What the system did:",
    ]
    lines += [f"  - {a}" for a in n.actions] or ["  - nothing: this rule only notifies"]
    lines.append("")
    if n.kind == "resolved":
        lines.append("No further email for this breach.")
    else:
        reminder = f"a reminder every {duration(n.repeat_s)}" if n.repeat_s > 0 else "no reminders"
        lines.append(f"Next: {reminder} while it fires, and an email when it resolves.")
    lines.append("Look: python -m monitor status; python -m proxy status")
    return "\n".join(lines) + "\n"


_ROLLOUT_LOOK = "Look: python -m proxy rollout status; python -m proxy audit"


def slack_payload(n: Notice) -> dict[str, object]:
    """A Slack incoming-webhook message (Mattermost and Rocket.Chat take it too)."""
    color = {"firing": "#d00000", "repeat": "#e8a000", "resolved": "#2eb886"}.get(n.kind, "#808080")
    head = subject(n).removeprefix("[switchyard] ")
    return {
        "text": f"switchyard: {head}",
        "attachments": [{"color": color, "fallback": head, "text": body(n)}],
    }
