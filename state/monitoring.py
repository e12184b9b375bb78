"""What a host's monitor remembers: rule states, notifications still to deliver,
and how delivery is going.

Rule states and the notifications a transition causes are written in one
transaction, so a monitor that restarts neither repeats an email it queued
nor forgets a firing rule. A notification leaves its outbox only once it was
delivered (at least once: a crash between sending and removing sends it again).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from state import outbox
from state.base import Accessor, audit, guarded
from state.errors import InvalidValue
from state.keys import KeySpace

OUTBOX_MAX = 500  # per channel: weeks of alerts at one per repeat interval
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_CHANNEL = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def parse_host_name(value: str) -> str:
    """A monitored host's name: letters, digits, dot, dash, underscore (it is part of keys)."""
    if not _HOST.fullmatch(value):
        raise InvalidValue(
            f"host name {value!r} is not usable: use 1-63 letters, digits, '.', '-' or '_',"
            " starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class NotifierStatus:
    """How delivery on one channel is going, for `python -m monitor status`."""

    channel: str
    state: str = "ready"  # ready (nothing sent yet), ok, failing
    failures: int = 0  # consecutive failed attempts
    last_error: str = ""
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    next_attempt_at: float | None = None
    delivered: int = 0  # since the monitor started

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: str) -> NotifierStatus:
        try:
            data = json.loads(raw)
            return cls(
                channel=str(data["channel"]),
                state=str(data["state"]),
                failures=int(data["failures"]),
                last_error=str(data["last_error"]),
                last_attempt_at=_opt_float(data.get("last_attempt_at")),
                last_success_at=_opt_float(data.get("last_success_at")),
                next_attempt_at=_opt_float(data.get("next_attempt_at")),
                delivered=int(data.get("delivered", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidValue(f"unreadable notifier status {raw[:80]!r}") from exc


@dataclass(frozen=True, slots=True)
class Queued:
    """A notification waiting in an outbox; `raw` is what removes it once delivered."""

    raw: str
    notice: Mapping[str, object]


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


class MonitorStore(Accessor):
    """One monitored host's rule states, outboxes and notifier status."""

    def __init__(
        self, client: aioredis.Redis, keys: KeySpace | None = None, *, host: str, actor: str = "unknown"
    ) -> None:
        super().__init__(client, keys, actor=actor)
        self.host = parse_host_name(host)

    async def rule_states(self) -> dict[str, dict[str, object]]:
        """Every stored rule state by rule name; unreadable entries are left out."""
        raw = await guarded(lambda: self.redis.hgetall(self.keys.monitor_rules(self.host)))
        found: dict[str, dict[str, object]] = {}
        for name, text in raw.items():
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict):
                found[str(name)] = data
        return found

    async def commit(
        self,
        states: Mapping[str, Mapping[str, object]],
        notices: Sequence[Mapping[str, object]],
        channels: Sequence[str],
        transitions: Sequence[tuple[str, object, object]] = (),
    ) -> None:
        """Store rule states and queue each notice on every channel, all or nothing.

        `transitions` are (what, before, after) for the audit log.
        """
        for channel in channels:
            _check_channel(channel)
        keys, host = self.keys, self.host

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                if states:
                    pipe.hset(
                        keys.monitor_rules(host),
                        mapping={name: json.dumps(dict(s)) for name, s in states.items()},
                    )
                for channel in channels:
                    if not notices:
                        break
                    outbox = keys.monitor_outbox(host, channel)
                    # A unique id, so removing one delivered notice never removes its twin.
                    pipe.rpush(outbox, *(json.dumps({**n, "id": uuid.uuid4().hex}) for n in notices))
                    pipe.ltrim(outbox, -OUTBOX_MAX, -1)
                for what, before, after in transitions:
                    audit(pipe, keys, what, before, after, who=self.actor)
                await pipe.execute()

        await guarded(run)

    async def forget_rules(self, names: Sequence[str]) -> None:
        if names:
            await guarded(lambda: self.redis.hdel(self.keys.monitor_rules(self.host), *names))

    async def next_notice(self, channel: str) -> Queued | None:
        """The oldest notification not yet delivered on `channel`; unreadable ones are dropped."""
        found = await outbox.oldest(self.redis, self.keys.monitor_outbox(self.host, _check_channel(channel)))
        return None if found is None else Queued(*found)

    async def delivered(self, channel: str, raw: str) -> None:
        key = self.keys.monitor_outbox(self.host, _check_channel(channel))
        await guarded(lambda: self.redis.lrem(key, 1, raw))

    async def queued(self, channel: str) -> int:
        key = self.keys.monitor_outbox(self.host, _check_channel(channel))
        return int(await guarded(lambda: self.redis.llen(key)))

    async def set_notifier(self, status: NotifierStatus) -> None:
        key = self.keys.monitor_notifiers(self.host)
        await guarded(lambda: self.redis.hset(key, _check_channel(status.channel), status.encode()))

    async def notifiers(self) -> list[NotifierStatus]:
        raw = await guarded(lambda: self.redis.hgetall(self.keys.monitor_notifiers(self.host)))
        found: list[NotifierStatus] = []
        for text in raw.values():
            try:
                found.append(NotifierStatus.decode(text))
            except InvalidValue:
                continue
        return sorted(found, key=lambda s: s.channel)


async def monitored_hosts(client: aioredis.Redis, keys: KeySpace | None = None) -> list[str]:
    """Hosts that have rule states, live or not (a dead host's firing rule still matters)."""
    keys = keys or KeySpace()
    head, tail = keys.monitor_rules_pattern.split("*")

    async def run() -> list[str]:
        names = [key async for key in client.scan_iter(match=keys.monitor_rules_pattern, count=100)]
        return sorted({name[len(head) : -len(tail)] for name in names})

    return await guarded(run)


def _check_channel(channel: str) -> str:
    if not _CHANNEL.fullmatch(channel):
        raise InvalidValue(f"channel name {channel!r} is not usable: use lower-case letters and digits")
    return channel
