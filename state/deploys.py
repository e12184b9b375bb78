"""Deploys: the per-environment lock, the history of deploys and rollbacks, and the
push webhook's remembered deliveries.

The lock expires, so a deploy that dies leaves nothing held for long; its holder
keeps it alive while it works. Every recorded result also goes to the audit log.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from state.base import Accessor, audit, guarded
from state.errors import InvalidValue
from state.locks import ExpiringLock
from state.model import PoolName, parse_pool

HISTORY_MAXLEN = 500
DeployAction = Literal["deploy", "rollback"]
_DELIVERY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def parse_delivery_id(value: str) -> str:
    """A webhook delivery id (GitHub sends a UUID): letters, digits and . _ : -, at most 128."""
    if not _DELIVERY.fullmatch(value):
        raise InvalidValue(
            f"delivery id {value[:40]!r} is not valid: use up to 128 letters, digits, '.', '_', ':' or '-'"
        )
    return value


@dataclass(frozen=True, slots=True)
class DeployRecord:
    """One deploy or rollback of an environment, as it ended."""

    env: PoolName
    action: DeployAction
    sha: str  # the commit deployed, or rolled back to ("" when unknown)
    result: Literal["succeeded", "failed"]
    by: str
    at: float
    seconds: float = 0.0
    # host -> the release that is current there afterwards
    releases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    failed_host: str = ""
    failed_task: str = ""
    error: str = ""
    entry_id: str = ""

    def fields(self) -> dict[str, str]:
        return {
            "action": self.action,
            "sha": self.sha,
            "result": self.result,
            "by": self.by,
            "at": repr(self.at),
            "seconds": repr(self.seconds),
            "releases": json.dumps(dict(self.releases), sort_keys=True),
            "failed_host": self.failed_host,
            "failed_task": self.failed_task,
            "error": self.error[:1000],
        }

    @classmethod
    def decode(cls, env: PoolName, entry_id: str, raw: Mapping[str, str]) -> DeployRecord:
        try:
            action = raw["action"]
            result = raw["result"]
            if action not in ("deploy", "rollback") or result not in ("succeeded", "failed"):
                raise ValueError(f"action {action!r}, result {result!r}")
            releases = json.loads(raw.get("releases") or "{}")
            return cls(
                env=env,
                action="deploy" if action == "deploy" else "rollback",
                sha=raw.get("sha", ""),
                result="succeeded" if result == "succeeded" else "failed",
                by=raw.get("by", ""),
                at=float(raw["at"]),
                seconds=float(raw.get("seconds") or 0),
                releases=MappingProxyType({str(k): str(v) for k, v in releases.items()}),
                failed_host=raw.get("failed_host", ""),
                failed_task=raw.get("failed_task", ""),
                error=raw.get("error", ""),
                entry_id=entry_id,
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise InvalidValue(f"unreadable deploy record {entry_id}: {exc}") from exc


class DeployStore(Accessor):
    def lock(self, env: PoolName) -> ExpiringLock:
        """The environment's deploy lock: one deploy or rollback at a time."""
        return ExpiringLock(self.redis, self.keys.deploy_lock(parse_pool(env)))

    async def acquire_lock(self, env: PoolName, holder: str, ttl_s: float) -> bool:
        """Take the environment's deploy lock unless someone holds it; it expires after `ttl_s`."""
        return await self.lock(env).acquire(holder, ttl_s)

    async def refresh_lock(self, env: PoolName, holder: str, ttl_s: float) -> bool:
        """Extend the lock if `holder` still has it; False means it was lost."""
        return await self.lock(env).refresh(holder, ttl_s)

    async def release_lock(self, env: PoolName, holder: str) -> bool:
        return await self.lock(env).release(holder)

    async def lock_holder(self, env: PoolName) -> str | None:
        return await self.lock(env).holder()

    async def record(self, entry: DeployRecord) -> str:
        """Append a finished deploy or rollback to the history and the audit log, in one
        transaction; returns its history entry id."""
        env = parse_pool(entry.env)

        async def run() -> str:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xadd(
                    self.keys.deploy_history(env), entry.fields(), maxlen=HISTORY_MAXLEN, approximate=True
                )
                after: dict[str, object] = {"action": entry.action, "sha": entry.sha, "result": entry.result}
                if entry.result == "failed":
                    after.update(failed_host=entry.failed_host, failed_task=entry.failed_task)
                else:
                    after["releases"] = dict(entry.releases)
                audit(pipe, self.keys, f"deploy:{env}", None, after, who=entry.by or self.actor)
                entry_id, *_ = await pipe.execute()
                return str(entry_id)

        return await guarded(run)

    async def history(self, env: PoolName, limit: int = 20) -> list[DeployRecord]:
        """The latest deploys and rollbacks of `env`, newest first; unreadable ones are skipped."""
        env = parse_pool(env)
        rows = await guarded(lambda: self.redis.xrevrange(self.keys.deploy_history(env), count=limit))
        found = []
        for entry_id, raw in rows:
            try:
                found.append(DeployRecord.decode(env, str(entry_id), raw))
            except InvalidValue:
                continue
        return found

    async def last_good(self, env: PoolName) -> DeployRecord | None:
        """The latest deploy or rollback of `env` that succeeded."""
        for entry in await self.history(env, HISTORY_MAXLEN):
            if entry.result == "succeeded":
                return entry
        return None

    async def remember_delivery(self, delivery_id: str, ttl_s: float) -> bool:
        """Note a webhook delivery; False if it was seen within `ttl_s` (a replay)."""
        key = self.keys.webhook_delivery(parse_delivery_id(delivery_id))
        ms = max(1, int(ttl_s * 1000))
        return bool(await guarded(lambda: self.redis.set(key, repr(time.time()), nx=True, px=ms)))
