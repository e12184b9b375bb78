"""Scale requests: the monitor asks for capacity, the provisioner serves it.

A request is an entry on a stream read through a consumer group, so a worker
that dies holding one leaves it pending for another worker to claim. A second
request for the same pool is refused while one is open (a `scale:pending` key
with a TTL), so a monitor that keeps seeing high load asks once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from redis.exceptions import WatchError

from state import streams
from state.base import Accessor, audit, guarded
from state.errors import InvalidValue
from state.model import PoolName, parse_pool

GROUP = "provisioners"
STREAM_MAXLEN = 1_000


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    entry_id: str  # the stream entry, for acknowledging
    request: str  # the request's own id, held by the pending key
    pool: PoolName
    reason: str
    by: str
    at: float


class ScaleQueue(Accessor):
    async def request(self, pool: PoolName, reason: str, *, pending_ttl_s: int = 900) -> ScaleRequest | None:
        """Ask for one more server in `pool`; None when a request is already open."""
        pool = parse_pool(pool)
        pending = self.keys.scale_pending(pool)
        request_id, at = uuid.uuid4().hex, time.time()

        async def run() -> ScaleRequest | None:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(pending)
                        if await pipe.exists(pending):
                            await pipe.reset()
                            return None
                        pipe.multi()
                        pipe.xadd(
                            self.keys.scale_requests,
                            {
                                "request": request_id,
                                "pool": pool,
                                "reason": reason,
                                "by": self.actor,
                                "at": repr(at),
                            },
                            maxlen=STREAM_MAXLEN,
                            approximate=True,
                        )
                        pipe.set(pending, request_id, ex=pending_ttl_s)
                        audit(pipe, self.keys, f"scale:{pool}", None, {"requested": reason}, who=self.actor)
                        entry_id, *_ = await pipe.execute()
                        return ScaleRequest(str(entry_id), request_id, pool, reason, self.actor, at)
                    except WatchError:
                        continue

        return await guarded(run)

    async def pending(self, pool: PoolName) -> str | None:
        """The id of the open request for `pool`, if any."""
        key = self.keys.scale_pending(parse_pool(pool))
        raw = await guarded(lambda: self.redis.get(key))
        return None if raw is None else str(raw)

    async def ensure_group(self) -> None:
        await streams.ensure_group(self.redis, self.keys.scale_requests, GROUP)

    async def claim(
        self, consumer: str, *, block_ms: int = 1000, reclaim_idle_ms: int = 60_000
    ) -> list[ScaleRequest]:
        """Requests for this worker: first one another worker left unacknowledged for
        `reclaim_idle_ms` (it died), else a new one, waiting up to `block_ms`.
        Malformed entries are acknowledged and skipped."""
        stream = self.keys.scale_requests
        found: list[ScaleRequest] = []
        malformed: list[str] = []
        entries = await streams.claim_one(
            self.redis, stream, GROUP, consumer, block_ms=block_ms, reclaim_idle_ms=reclaim_idle_ms
        )
        for entry_id, fields in entries:
            try:
                found.append(_decode(entry_id, fields))
            except InvalidValue:
                malformed.append(entry_id)
        if malformed:
            await guarded(lambda: self.redis.xack(stream, GROUP, *malformed))
        return found

    async def touch(self, req: ScaleRequest, consumer: str) -> None:
        """Reset the request's idle time: a long provisioning must not look like a dead worker."""
        await guarded(
            lambda: self.redis.xclaim(
                self.keys.scale_requests,
                GROUP,
                consumer,
                min_idle_time=0,
                message_ids=[req.entry_id],
                justid=True,
            )
        )

    async def done(self, req: ScaleRequest, outcome: dict[str, object]) -> None:
        """Acknowledge `req`, close it (so a new request may follow) and audit the outcome."""
        pending = self.keys.scale_pending(req.pool)

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(pending)
                        held = await pipe.get(pending)
                        pipe.multi()
                        pipe.xack(self.keys.scale_requests, GROUP, req.entry_id)
                        if held == req.request:
                            pipe.delete(pending)
                        audit(
                            pipe,
                            self.keys,
                            f"scale:{req.pool}",
                            {"requested": req.reason},
                            outcome,
                            who=self.actor,
                        )
                        await pipe.execute()
                        return
                    except WatchError:
                        continue

        await guarded(run)


def _decode(entry_id: str, fields: dict[str, str]) -> ScaleRequest:
    try:
        at = float(fields.get("at", "0") or 0)
    except ValueError as exc:
        raise InvalidValue(f"scale request {entry_id} has a bad time: {fields.get('at')!r}") from exc
    return ScaleRequest(
        entry_id=str(entry_id),
        request=fields.get("request", ""),
        pool=parse_pool(fields.get("pool", "")),
        reason=fields.get("reason", ""),
        by=fields.get("by", ""),
        at=at,
    )
