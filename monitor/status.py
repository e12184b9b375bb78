"""`python -m monitor status`: every host's last sample and age, each rule's
state, and how notification delivery is going. Gathering reads Redis; the
rendering below it is pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from monitor.notice import clock, duration, pct
from state import HostSample, HostStore, KeySpace, MonitorStore, NotifierStatus, monitored_hosts


@dataclass(frozen=True, slots=True)
class HostReport:
    host: str
    sample: HostSample | None  # None: no live sample (monitor stopped or host gone)
    rules: dict[str, dict[str, object]]
    notifiers: tuple[tuple[NotifierStatus, int], ...]  # with the count still queued


async def gather(client: aioredis.Redis, keys: KeySpace) -> list[HostReport]:
    samples = {s.host: s for s in await HostStore(client, keys).hosts()}
    names = sorted(set(samples) | set(await monitored_hosts(client, keys)))
    reports = []
    for name in names:
        store = MonitorStore(client, keys, host=name)
        notifiers = tuple([(n, await store.queued(n.channel)) for n in await store.notifiers()])
        reports.append(HostReport(name, samples.get(name), await store.rule_states(), notifiers))
    return reports


def to_json(reports: list[HostReport], now: float) -> dict[str, object]:
    hosts = []
    for r in reports:
        sample = None
        if r.sample is not None:
            sample = {
                "role": r.sample.role,
                "cpu_percent": r.sample.cpu_percent,
                "mem_percent": r.sample.mem_percent,
                "at": r.sample.at,
                "age_s": round(max(now - r.sample.at, 0.0), 3),
            }
        hosts.append(
            {
                "host": r.host,
                "sample": sample,
                "rules": r.rules,
                "notifiers": [{**asdict(n), "queued": queued} for n, queued in r.notifiers],
            }
        )
    return {"hosts": hosts, "at": now}


def render(reports: list[HostReport], now: float) -> str:
    if not reports:
        return "no monitored hosts on this Redis (start one: python -m monitor run --role proxy|app|staging)"
    lines: list[str] = []
    for r in reports:
        if r.sample is None:
            lines.append(f"{r.host}  no live sample: its monitor is stopped or the host is gone")
        else:
            s = r.sample
            lines.append(
                f"{r.host}  role {s.role}  cpu {s.cpu_percent:.1f}%  mem {s.mem_percent:.1f}%"
                f"  sampled {duration(max(now - s.at, 0.0))} ago"
            )
        for name, data in sorted(r.rules.items()):
            lines.append(f"  rule {name:<10} {_rule_line(data, now)}")
        for status, queued in r.notifiers:
            lines.append(f"  {status.channel:<15} {_notifier_line(status, queued, now)}")
    return "\n".join(lines)


def _num(data: dict[str, object], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _rule_line(data: dict[str, object], now: float) -> str:
    phase = str(data.get("phase", "?"))
    rule = data.get("rule")
    spec = ""
    if isinstance(rule, dict):
        threshold, recover = _num(rule, "threshold"), _num(rule, "recover_below")
        if threshold is not None and recover is not None:
            spec = (
                f" [{rule.get('metric')} > {pct(threshold)} for {rule.get('held_for')},"
                f" resolves < {pct(recover)}]"
            )
    value, peak, since = _num(data, "value"), _num(data, "peak"), _num(data, "since")
    last = f"last {pct(value)}" if value is not None else "no sample yet"
    if phase == "firing" and since is not None:
        peak_text = f", peak {pct(peak)}" if peak is not None else ""
        return f"FIRING since {clock(since)} ({duration(now - since)}; {last}{peak_text}){spec}"
    if phase == "pending":
        return f"pending ({data.get('streak')} sample(s) above; {last}){spec}"
    resolved = _num(data, "resolved_at")
    if phase == "resolved" and resolved is not None:
        return f"resolved at {clock(resolved)} ({last}){spec}"
    return f"{phase} ({last}){spec}"


def _notifier_line(n: NotifierStatus, queued: int, now: float) -> str:
    waiting = f"; {queued} waiting" if queued else ""
    if n.state == "failing":
        retry = f", next try in {duration(max(n.next_attempt_at - now, 0.0))}" if n.next_attempt_at else ""
        return f"FAILING: {n.last_error} ({n.failures} failed attempt(s){retry}{waiting})"
    if n.state == "ok" and n.last_success_at is not None:
        note = f"; warning: {n.last_error}" if n.last_error else ""
        return f"ok (last delivered {clock(n.last_success_at)}, {n.delivered} since start{note}{waiting})"
    return f"ready (nothing to send yet{waiting})"
