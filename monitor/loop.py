"""The monitor's loop: sample, publish, step the rules, act, queue notices.

Every tick is guarded: a failed read, a Redis outage or a bug in one tick is
logged and the next tick runs. While Redis is away, rule states and notices
are kept here and written when it answers again, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from monitor.actions import Actions
from monitor.config import MonitorConfig
from monitor.courier import Courier, Sender
from monitor.errors import SampleError
from monitor.notice import Notice, from_event, held_for
from monitor.rules import Event, Phase, Rule, RuleState, step
from monitor.sampler import Reading, Source
from state import HostSample, HostStore, KeySpace, MonitorStore, ScaleQueue, StateError
from state.claims import AlertClaims
from state.monitoring import OUTBOX_MAX
from state.tasks import stop_tasks

log = logging.getLogger("monitor")


@dataclass
class _Unwritten:
    """Changes Redis has not taken yet."""

    states: dict[str, dict[str, object]] = field(default_factory=dict)
    notices: list[dict[str, object]] = field(default_factory=list)
    transitions: list[tuple[str, object, object]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.states or self.notices or self.transitions)


class Monitor:
    def __init__(
        self,
        config: MonitorConfig,
        client: aioredis.Redis,
        source: Source,
        senders: Sequence[Sender],
        *,
        host: str,
        role: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.host = host
        self.role = role
        self.source = source
        self.rules = config.rules
        self.clock = clock
        self.actor = f"monitor:{host}"
        keys = KeySpace(config.key_prefix)
        self.hosts = HostStore(client, keys)
        self.store = MonitorStore(client, keys, host=host, actor=self.actor)
        self.actions = Actions(
            AlertClaims(client, keys, actor=self.actor),
            ScaleQueue(client, keys, actor=self.actor),
            host=host,
            actor=self.actor,
        )
        self.senders = list(senders)
        self.couriers = [
            Courier(
                s,
                self.store,
                retry_base_s=config.retry_base_s,
                retry_max_s=config.retry_max_s,
                idle_poll_s=max(config.interval_s, 1.0),
                secrets=config.secrets(),
                clock=clock,
            )
            for s in self.senders
        ]
        # A longer silence (the monitor was down) breaks a streak of "consecutive" samples.
        self.max_gap_s = max(3 * config.interval_s, config.interval_s + 5.0)
        self.states: dict[str, RuleState] = {}
        self.loaded = False
        self.unwritten = _Unwritten()
        self.unacted: dict[str, Event] = {}  # actions that failed, retried while the rule stays put
        self.last_reading: Reading | None = None
        self._problems: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._ticks(), name="monitor-ticks")]
        self._tasks += [loop.create_task(c.run(), name=f"courier-{c.channel}") for c in self.couriers]

    async def stop(self) -> None:
        await stop_tasks(self._tasks, timeout_s=5.0)
        self._tasks = []
        for sender in self.senders:
            await sender.close()

    async def _ticks(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("a monitor tick failed; the next one runs as usual")
            next_at += self.config.interval_s
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a stall): skip the missed ticks, keep the cadence
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)

    async def tick(self) -> None:
        try:
            reading = await self.source.sample()
        except SampleError as exc:
            self._problem("sample", str(exc))
            return
        self._solved("sample")
        self.last_reading = reading
        now = self.clock()
        sample = HostSample(self.host, self.role, reading.cpu_percent, reading.mem_percent, now)
        try:
            await self.hosts.publish(sample, ttl_s=self.config.ttl_s)
            if not self.loaded:
                await self._load()
            self._solved("redis")
        except StateError as exc:
            self._problem("redis", f"{exc}; rules keep running, their state is written when Redis is back")
        if not self.loaded:
            return  # without the stored states a restart could repeat an email
        await self._retry_actions()
        for rule in self.rules:
            await self._evaluate(rule, reading, now)
        await self._flush()

    async def _load(self) -> None:
        stored = await self.store.rule_states()
        for rule in self.rules:
            raw = stored.get(rule.name)
            if raw is None:
                continue
            try:
                self.states[rule.name] = RuleState.from_dict(raw)
            except ValueError as exc:
                log.error("rule %s: stored state unreadable (%s): starting it afresh", rule.name, exc)
        unknown = sorted(set(stored) - {r.name for r in self.rules})
        if unknown:
            log.warning("forgetting the state of rules no longer configured: %s", ", ".join(unknown))
            await self.store.forget_rules(unknown)
        firing = [n for n, s in self.states.items() if s.phase is Phase.FIRING]
        if firing:
            log.warning("carrying on with firing rules: %s (no new alert email)", ", ".join(firing))
        self.loaded = True

    async def _evaluate(self, rule: Rule, reading: Reading, now: float) -> None:
        value = reading.cpu_percent if rule.metric == "cpu" else reading.mem_percent
        before = self.states.get(rule.name, RuleState())
        after, event = step(rule, before, value, now, max_gap_s=self.max_gap_s)
        self.states[rule.name] = after
        self.unwritten.states[rule.name] = {**after.to_dict(), "rule": _describe(rule)}
        if event is None:
            return
        keep_alert = event.kind == "resolved" and self._other_canary_rule_fires(rule)
        lines, ok = await self.actions.run(event, keep_alert=keep_alert)
        if not ok and event.kind != "repeat":
            self.unacted[rule.name] = event
        else:
            self.unacted.pop(rule.name, None)
        notice = from_event(event, host=self.host, role=self.role, source=self.source.name, actions=lines)
        self._log_event(notice)
        if self.senders:
            self.unwritten.notices.append(notice.to_dict())
            del self.unwritten.notices[:-OUTBOX_MAX]
        if event.kind != "repeat":
            self.unwritten.transitions.append(
                (f"monitor:{self.host}:{rule.name}", before.phase.value, after.phase.value)
            )

    def _other_canary_rule_fires(self, rule: Rule) -> bool:
        return any(
            r.name != rule.name
            and "stop_canary" in r.actions
            and self.states.get(r.name, RuleState()).phase is Phase.FIRING
            for r in self.rules
        )

    async def _retry_actions(self) -> None:
        for name, event in list(self.unacted.items()):
            wanted = Phase.FIRING if event.kind == "firing" else Phase.RESOLVED
            if self.states.get(name, RuleState()).phase is not wanted:
                self.unacted.pop(name)
                continue
            keep_alert = event.kind == "resolved" and self._other_canary_rule_fires(event.rule)
            lines, ok = await self.actions.run(event, keep_alert=keep_alert)
            if ok:
                self.unacted.pop(name)
                log.warning("rule %s: actions done on retry: %s", name, "; ".join(lines))

    async def _flush(self) -> None:
        pending = self.unwritten
        if not pending:
            return
        channels = [s.channel for s in self.senders]
        try:
            await self.store.commit(pending.states, pending.notices, channels, pending.transitions)
        except StateError as exc:
            self._problem("redis", f"{exc}; rules keep running, their state is written when Redis is back")
            return
        self.unwritten = _Unwritten()
        if pending.notices:
            for courier in self.couriers:
                courier.wake.set()

    def _log_event(self, n: Notice) -> None:
        level = logging.INFO if n.kind == "resolved" else logging.WARNING
        log.log(
            level,
            "rule %s %s: %s %.1f%% (threshold %g%%, recover below %g%%) host=%s actions=%s",
            n.rule,
            n.kind,
            n.metric,
            n.value,
            n.threshold,
            n.recover_below,
            n.host,
            "; ".join(n.actions) or "none",
        )

    def _problem(self, what: str, text: str) -> None:
        # Logged when it starts or changes, not once per tick.
        if self._problems.get(what) != text:
            self._problems[what] = text
            log.warning("%s: %s", what, text)

    def _solved(self, what: str) -> None:
        if self._problems.pop(what, None) is not None:
            log.warning("%s: working again", what)


def _describe(rule: Rule) -> dict[str, object]:
    """The rule as status shows it next to its state."""
    return {
        "metric": rule.metric,
        "threshold": rule.threshold,
        "recover_below": rule.recover_below,
        "held_for": held_for(rule),
        "repeat_s": rule.repeat_s,
        "actions": list(rule.actions),
    }
