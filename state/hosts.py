"""Host samples: what each monitored host last measured, and a short history.

The latest sample lives under a key with a TTL, so a host that dies drops out
of the list on its own; the history is a capped stream.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from state.base import Accessor, guarded
from state.errors import InvalidValue

HISTORY_MAXLEN = 2_000  # about 2.7 hours at the default 5 s interval
ROLES = ("proxy", "app", "staging")


@dataclass(frozen=True, slots=True)
class HostSample:
    host: str
    role: str  # proxy, app or staging
    cpu_percent: float
    mem_percent: float
    at: float  # wall-clock time of the sample

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: str) -> HostSample:
        try:
            data = json.loads(raw)
            return cls(
                host=str(data["host"]),
                role=str(data["role"]),
                cpu_percent=float(data["cpu_percent"]),
                mem_percent=float(data["mem_percent"]),
                at=float(data["at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidValue(f"unreadable host sample {raw[:80]!r}") from exc


def parse_role(value: str) -> str:
    if value not in ROLES:
        raise InvalidValue(f"unknown role {value!r}: use one of {', '.join(ROLES)}")
    return value


class HostStore(Accessor):
    """The hosts' latest samples and their histories (written by the monitors)."""

    async def publish(self, sample: HostSample, *, ttl_s: int) -> None:
        """Record `sample` as the host's latest (expiring after `ttl_s`) and in its history."""
        keys = self.keys

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(keys.host(sample.host), sample.encode(), ex=ttl_s)
                pipe.xadd(
                    keys.host_history(sample.host),
                    {"cpu": repr(sample.cpu_percent), "mem": repr(sample.mem_percent), "at": repr(sample.at)},
                    maxlen=HISTORY_MAXLEN,
                    approximate=True,
                )
                await pipe.execute()

        await guarded(run)

    async def hosts(self) -> list[HostSample]:
        """Every host with a live sample, sorted by name; unreadable entries are skipped."""

        async def run() -> list[HostSample]:
            names = [key async for key in self.redis.scan_iter(match=self.keys.host_pattern, count=100)]
            if not names:
                return []
            found: list[HostSample] = []
            for raw in await self.redis.mget(names):
                if raw is None:
                    continue  # expired between SCAN and MGET
                try:
                    found.append(HostSample.decode(raw))
                except InvalidValue:
                    continue
            return sorted(found, key=lambda s: s.host)

        return await guarded(run)

    async def history(self, host: str, *, since: float = 0.0, limit: int = 1_000) -> list[HostSample]:
        """The host's samples taken at or after `since`, oldest first (role left empty)."""

        async def run() -> list[HostSample]:
            rows = await self.redis.xrevrange(self.keys.host_history(host), count=limit)
            out: list[HostSample] = []
            for _id, fields in rows:
                try:
                    sample = HostSample(
                        host, "", float(fields["cpu"]), float(fields["mem"]), float(fields["at"])
                    )
                except (KeyError, ValueError):
                    continue
                if sample.at < since:
                    break
                out.append(sample)
            out.reverse()
            return out

        return await guarded(run)
