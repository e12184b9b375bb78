"""Per-version request counts from every proxy, in time buckets: a HASH per bucket,
field "<pool>:<release>:<counter>" -> count, kept `retention_s` past the bucket's end.

This module deals in plain mappings (counter name -> int); the proxy turns them into
its own values. A proxy adds a batch of deltas in one atomic script call, named by a
batch id: the call is idempotent, so a batch sent again after a lost reply (by the
proxy, or by redis-py's own retry on a timeout) is counted once, never twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from state.base import Accessor, guarded
from state.deploys import DeployStore
from state.errors import InvalidValue
from state.keys import KeySpace
from state.model import POOLS, PoolName

UNKNOWN_RELEASE = "unknown"
# A batch id outlives any retry of it by far; one key per proxy, overwritten per batch.
APPLIED_TTL_S = 3600
# The longest window read at once: a day of 10 s buckets is 8,640 reads in one pipeline.
MAX_BUCKETS = 8640

_RELEASE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_COUNTER = re.compile(r"[a-z0-9_.]{1,40}")

# (pool, release) -> counter name -> count
Counts = Mapping[tuple[str, str], Mapping[str, int]]

_ADD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
local i = 3
for k = 2, #KEYS do
  local at, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  redis.call('EXPIREAT', KEYS[k], at)
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def parse_release(value: str) -> str:
    """A release label: a commit sha (or any short name of letters, digits, . _ -)."""
    if not _RELEASE.fullmatch(value):
        raise InvalidValue(
            f"release {value[:40]!r} is not valid: use up to 64 letters, digits, '.', '_', '-'"
        )
    return value


@dataclass(frozen=True, slots=True)
class StatsSpan:
    """What a read found: the bucket-aligned span and each bucket's counts (empty ones left out)."""

    start: int
    end: int
    bucket_s: int
    buckets: Mapping[int, Mapping[tuple[PoolName, str], Mapping[str, int]]]


class VersionStatsStore(Accessor):
    def __init__(
        self,
        client: aioredis.Redis,
        keys: KeySpace | None = None,
        *,
        actor: str = "unknown",
        bucket_s: int = 10,
        retention_s: int = 86400,
    ) -> None:
        super().__init__(client, keys, actor=actor)
        if bucket_s < 1 or retention_s < bucket_s:
            raise InvalidValue("stats buckets need bucket_s >= 1 and retention_s >= bucket_s")
        self.bucket_s = bucket_s
        self.retention_s = retention_s
        self._add = client.register_script(_ADD)

    def bucket_of(self, at: float) -> int:
        """The start (epoch seconds) of the bucket `at` falls in."""
        return int(at // self.bucket_s) * self.bucket_s

    def expires_at(self, bucket: int) -> int:
        return bucket + self.bucket_s + self.retention_s

    async def add(self, writer: str, batch_id: str, buckets: Mapping[int, Counts]) -> bool:
        """Add one batch of deltas (bucket start -> counts) in one atomic call; False if
        this batch id was the last one `writer` added already (nothing is added twice)."""
        keys = [self.keys.version_stats_applied(writer)]
        args: list[Any] = [batch_id, APPLIED_TTL_S]
        for bucket, counts in sorted(buckets.items()):
            fields = _fields(counts)
            if fields:
                keys.append(self.keys.version_stats(bucket))
                args += [self.expires_at(bucket), len(fields) // 2, *fields]
        if len(keys) == 1:
            return True
        return bool(await guarded(lambda: self._add(keys=keys, args=args)))

    async def read(self, start: float, end: float) -> StatsSpan:
        """Every bucket that overlaps [start, end), in one pipeline."""
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            raise InvalidValue(f"a stats window needs start < end, got {start!r} .. {end!r}")
        first = self.bucket_of(start)
        last = self.bucket_of(end) if end % self.bucket_s else int(end) - self.bucket_s
        starts = list(range(first, last + 1, self.bucket_s))
        if len(starts) > MAX_BUCKETS or end - start > self.retention_s + self.bucket_s:
            raise InvalidValue(f"a stats window is at most {self.retention_s} s (stats_retention_s)")

        async def run() -> list[dict[str, str]]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for bucket in starts:
                    pipe.hgetall(self.keys.version_stats(bucket))
                return list(await pipe.execute())

        rows = await guarded(run)
        found = {b: _parse(raw) for b, raw in zip(starts, rows, strict=True) if raw}
        return StatsSpan(first, last + self.bucket_s, self.bucket_s, found)

    async def releases(self) -> dict[PoolName, str]:
        """Each pool's release: the sha of its latest successful deploy or rollback, else unknown."""
        deploys = DeployStore(self.redis, self.keys)
        out: dict[PoolName, str] = {}
        for pool in POOLS:
            entry = await deploys.last_good(pool)
            sha = entry.sha if entry is not None else ""
            out[pool] = sha if _RELEASE.fullmatch(sha) else UNKNOWN_RELEASE
        return out


def _fields(counts: Counts) -> list[Any]:
    out: list[Any] = []
    for (pool, release), values in sorted(counts.items()):
        if pool not in POOLS:
            raise InvalidValue(f"pool {pool!r} is not production or staging")
        parse_release(release)
        for name, n in sorted(values.items()):
            if not _COUNTER.fullmatch(name):
                raise InvalidValue(f"counter name {name!r} is not valid")
            if n:
                out += [f"{pool}:{release}:{name}", int(n)]
    return out


def _parse(raw: Mapping[str, str]) -> dict[tuple[PoolName, str], dict[str, int]]:
    """A bucket's hash; a field that does not parse (written by hand) is left out."""
    out: dict[tuple[PoolName, str], dict[str, int]] = {}
    for field, value in raw.items():
        pool, _, rest = field.partition(":")
        release, _, name = rest.partition(":")
        if pool not in POOLS or not _RELEASE.fullmatch(release) or not _COUNTER.fullmatch(name):
            continue
        try:
            n = int(value)
        except ValueError:
            continue
        key: tuple[PoolName, str] = ("staging" if pool == "staging" else "production", release)
        out.setdefault(key, {})[name] = n
    return out
