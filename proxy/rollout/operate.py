"""What a person does to a rollout, for the CLI and the admin API alike: start one,
pause, resume, abort or promote it. Each is one compare-and-set write, retried when
the leader wrote in between, then the weight."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from proxy.rollout import machine
from proxy.rollout.apply import apply_weight, commit, record_of, summary
from proxy.rollout.model import ACTIVE, Plan, Rollout, RolloutError
from state import DeployStore, StateStore
from state.rollouts import RolloutStore

_ATTEMPTS = 5


async def staging_release(deploys: DeployStore) -> str:
    """The sha staging serves: its last successful deploy ("unknown" without one)."""
    for record in await deploys.history("staging", 20):
        if record.result == "succeeded" and record.sha:
            return record.sha
    return machine.UNKNOWN_RELEASE


async def start(rollouts: RolloutStore, store: StateStore, plan: Plan, release: str) -> Rollout:
    snap = await store.read_snapshot()
    if snap.alert is not None:
        raise RolloutError(f"the kill switch is on ({snap.alert.reason}): clear it before a rollout")
    if not snap.staging:
        raise RolloutError("staging has no backends: add one (python -m proxy pool add staging URL) first")
    now = time.time()
    rollout_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + uuid.uuid4().hex[:4]
    r, _actions = machine.start(
        plan, rollout_id=rollout_id, by=rollouts.actor, release=release, weight_before=snap.weight, now=now
    )
    active = {str(s) for s in ACTIVE}
    if not await rollouts.create(
        record_of(r), replaceable=lambda stored: stored.get("status") not in active, audited=summary(r)
    ):
        found = await rollouts.read() or {}
        raise RolloutError(
            f"rollout {found.get('id')} is {found.get('status')}: abort it or let it finish before another"
        )
    return await apply_weight(rollouts, store, replace(r, revision=1))


async def current(rollouts: RolloutStore) -> Rollout:
    record = await rollouts.read()
    if record is None:
        raise LookupError("no rollout yet: start one with `python -m proxy rollout start`")
    return Rollout.from_json(record)


async def act(rollouts: RolloutStore, store: StateStore, what: machine.Command, reason: str) -> Rollout:
    for _ in range(_ATTEMPTS):
        r = await current(rollouts)
        after = await commit(rollouts, store, r, machine.command(r, what, reason, time.time()))
        if after is not None:
            return after
    raise RolloutError(f"the rollout kept changing under {what}: try again")
