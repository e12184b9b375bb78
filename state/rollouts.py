"""Progressive rollouts: the one record, the leader's lease, the chat outbox and the
deploy requests a finished rollout makes.

The record is JSON in one key with a `revision`. A write names the revision it
read and happens only if that is still the stored one (WATCH/MULTI), so of two
proxies that both think they lead, one judges a step and the other's write is
refused: no step runs twice. Each write also appends its audit entry, queues its
notices and, on promotion, its deploy request, all in the same transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from state import outbox, streams
from state.base import Accessor, audit, guarded
from state.errors import InvalidValue
from state.keys import KeySpace
from state.locks import ExpiringLock
from state.monitoring import parse_host_name

GROUP = "provisioners"
OUTBOX_MAX = 500
STREAM_MAXLEN = 1_000
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeployRequest:
    entry_id: str  # the stream entry, for acknowledging
    request: str  # the request's own id: its result is stored under it
    sha: str
    rollout: str
    by: str
    at: float


class RolloutStore(Accessor):
    """`email_host`: a monitored host whose monitor mails each notice too (its email outbox)."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: KeySpace | None = None,
        *,
        actor: str = "unknown",
        email_host: str = "",
    ) -> None:
        super().__init__(client, keys, actor=actor)
        self.email_host = parse_host_name(email_host) if email_host else ""

    def lease(self) -> ExpiringLock:
        """One proxy leads rollouts: whoever holds this lease."""
        return ExpiringLock(self.redis, self.keys.rollout_lease)

    async def read(self) -> Record | None:
        raw = await guarded(lambda: self.redis.get(self.keys.rollout))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidValue(
                f"the rollout record is not JSON ({exc}): `python -m proxy rollout start` replaces it"
            ) from exc
        if not isinstance(data, dict):
            raise InvalidValue(
                "the rollout record is not a JSON object: `python -m proxy rollout start` replaces it"
            )
        return data

    async def create(self, record: Record, *, replaceable: Callable[[Record], bool], audited: object) -> bool:
        """Store a new rollout unless the stored one is not `replaceable` (still active)."""
        return await self._write(None, record, replaceable=replaceable, audited=(None, audited))

    async def replace(
        self,
        revision: int,
        record: Record,
        *,
        audited: tuple[object, object] | None,
        notices: Sequence[Mapping[str, object]] = (),
        deploy: tuple[str, str] | None = None,
    ) -> bool:
        """Write `record` if the stored one is still at `revision`; False if it was not.
        `audited` is (before, after) for the audit log (None: a bookkeeping write);
        `deploy` is (request id, sha): a deploy request, queued in the same transaction."""
        return await self._write(revision, record, audited=audited, notices=notices, deploy=deploy)

    async def _write(
        self,
        revision: int | None,
        record: Record,
        *,
        audited: tuple[object, object] | None,
        replaceable: Callable[[Record], bool] | None = None,
        notices: Sequence[Mapping[str, object]] = (),
        deploy: tuple[str, str] | None = None,
    ) -> bool:
        k = self.keys

        def refused(stored: object, held: int) -> bool:
            if revision is not None:
                return held != revision
            return isinstance(stored, dict) and replaceable is not None and not replaceable(stored)

        async def run() -> bool:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(k.rollout)
                        raw = await pipe.get(k.rollout)
                        stored = _loads(raw)
                        held = int(stored.get("revision", 0)) if isinstance(stored, dict) else 0
                        if refused(stored, held):
                            await pipe.reset()
                            return False
                        pipe.multi()
                        pipe.set(k.rollout, json.dumps({**record, "revision": held + 1}))
                        if audited is not None:
                            audit(pipe, k, "rollout", audited[0], audited[1], who=self.actor)
                        self._queue(pipe, str(record.get("id", "")), notices, deploy)
                        await pipe.execute()
                        return True
                    except WatchError:
                        continue

        return await guarded(run)

    def _queue(
        self,
        pipe: aioredis.client.Pipeline,
        rollout: str,
        notices: Sequence[Mapping[str, object]],
        deploy: tuple[str, str] | None,
    ) -> None:
        k = self.keys
        if notices:
            pipe.rpush(k.rollout_outbox, *(json.dumps({**n, "id": uuid.uuid4().hex}) for n in notices))
            pipe.ltrim(k.rollout_outbox, -OUTBOX_MAX, -1)
        if notices and self.email_host:
            outbox = k.monitor_outbox(self.email_host, "email")
            pipe.rpush(outbox, *(json.dumps(_as_monitor_notice(n, self.email_host)) for n in notices))
            pipe.ltrim(outbox, -OUTBOX_MAX, -1)
        if deploy is not None:
            request, sha = deploy
            fields = {
                "request": request,
                "sha": sha,
                "rollout": rollout,
                "by": self.actor,
                "at": repr(time.time()),
            }
            pipe.xadd(k.rollout_deploys, fields, maxlen=STREAM_MAXLEN, approximate=True)

    async def next_notice(self) -> tuple[str, Record] | None:
        """The oldest notice not yet posted (its raw form removes it); unreadable ones are dropped."""
        return await outbox.oldest(self.redis, self.keys.rollout_outbox)

    async def delivered(self, raw: str) -> None:
        await guarded(lambda: self.redis.lrem(self.keys.rollout_outbox, 1, raw))

    async def deploy_result(self, request: str) -> Record | None:
        raw = await guarded(lambda: self.redis.hget(self.keys.rollout_deploy_results, request))
        data = json.loads(raw) if raw else None
        return data if isinstance(data, dict) else None


class DeployRequests(Accessor):
    """The provisioner's side of the deploy requests: claim one, deploy, say how it went."""

    async def ensure_group(self) -> None:
        await streams.ensure_group(self.redis, self.keys.rollout_deploys, GROUP)

    async def claim(
        self, consumer: str, *, block_ms: int = 1000, reclaim_idle_ms: int = 600_000
    ) -> list[DeployRequest]:
        """A request another worker left unacknowledged for `reclaim_idle_ms`, else a new one."""
        stream = self.keys.rollout_deploys

        found = []
        entries = await streams.claim_one(
            self.redis, stream, GROUP, consumer, block_ms=block_ms, reclaim_idle_ms=reclaim_idle_ms
        )
        for entry_id, fields in entries:
            try:
                at = float(fields.get("at", "0") or 0)
            except ValueError:
                at = 0.0
            found.append(
                DeployRequest(
                    str(entry_id), fields.get("request", ""), fields.get("sha", ""),
                    fields.get("rollout", ""), fields.get("by", ""), at,
                )
            )  # fmt: skip
        return found

    async def done(self, req: DeployRequest, *, ok: bool, detail: str) -> None:
        """Acknowledge `req` and store its result, where the rollout's leader reads it."""
        result = json.dumps({"ok": ok, "detail": detail, "at": time.time()})

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.keys.rollout_deploys, GROUP, req.entry_id)
                pipe.hset(self.keys.rollout_deploy_results, req.request, result)
                outcome = {"deploy": req.sha, "ok": ok, "detail": detail}
                audit(
                    pipe,
                    self.keys,
                    f"rollout:deploy:{req.rollout}",
                    {"requested": req.sha},
                    outcome,
                    who=self.actor,
                )
                await pipe.execute()

        await guarded(run)


def _as_monitor_notice(n: Mapping[str, object], host: str) -> dict[str, object]:
    """A rollout notice in the form a monitor mails (monitor/notice.py, rule "rollout")."""
    at = float(n.get("at") or time.time())  # type: ignore[arg-type]
    details = n.get("details")
    lines = (
        [str(n.get("text", "")), *(str(d) for d in details)]
        if isinstance(details, list)
        else [str(n.get("text"))]
    )
    weight = n.get("weight")
    value = float(weight) if isinstance(weight, int | float) else 0.0
    fixed = {"role": "rollout", "source": "rollout", "rule": "rollout", "metric": "weight", "held_for": ""}
    zeros = dict.fromkeys(("threshold", "recover_below", "repeat_s", "peak"), 0.0)
    return {**fixed, **zeros, "kind": str(n.get("kind", "")), "host": host, "value": value} | {
        "since": at,
        "at": at,
        "actions": lines,
        "id": uuid.uuid4().hex,
    }


def _loads(raw: str | None) -> object:
    """A stored record to overwrite; one that does not parse counts as none (start anew)."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
