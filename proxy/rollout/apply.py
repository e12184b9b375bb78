"""Carry out a transition: write the record (compare-and-set on its revision, with its
audit entry, notices and deploy request in one transaction), then set the weight.

The record goes first: of two writers only one gets past the revision check, so
only one sets a weight or sends a notice. An abort's weight of 0 goes before it, as
the kill switch would: the canary stops a few Redis round trips sooner. A writer that dies between the two
leaves `applied` false, and the next leader sets the weight (`reconcile`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from proxy.rollout.machine import Notify, RequestDeploy, SetWeight, Transition
from proxy.rollout.model import Rollout, Status
from state import StateStore
from state.rollouts import RolloutStore

log = logging.getLogger("proxy.rollout")


def summary(r: Rollout | None) -> dict[str, object] | None:
    """What the audit log shows of a rollout: where it is and the last verdict."""
    if r is None:
        return None
    out: dict[str, object] = {"id": r.id, "status": str(r.status), "step": r.step, "weight": r.target}
    if r.reason:
        out["reason"] = r.reason
    if (last := r.last) is not None:
        out["judged"] = len(r.history)  # verdicts so far: a write that adds one shows it rise
        out["verdict"] = {"step": last.step, "outcome": last.outcome, "explain": last.explain}
    return out


def notice(action: Notify, r: Rollout) -> dict[str, object]:
    return {
        "kind": action.kind,
        "rollout": r.id,
        "text": action.text,
        "details": list(action.details),
        "release": r.release,
        "weight": r.target,
        "at": time.time(),
    }


def record_of(r: Rollout) -> dict[str, object]:
    data = r.to_json()
    data.pop("revision", None)
    return data


async def commit(rollouts: RolloutStore, store: StateStore, before: Rollout, t: Transition) -> Rollout | None:
    """The rollout after `t`, written; None when another writer got there first."""
    after, actions = t
    if after == before and not actions:
        return before
    if after.status is Status.ABORTED and SetWeight(0) in actions:
        # An abort stops the canary before anything else: weight 0 is always safe to
        # write, even should another writer's record win (reconcile then follows it).
        await store.set_weight(0)
    notices = [notice(a, after) for a in actions if isinstance(a, Notify)]
    deploy = next(((a.request, a.sha) for a in actions if isinstance(a, RequestDeploy)), None)
    wrote = await rollouts.replace(
        before.revision,
        record_of(after),
        audited=(summary(before), summary(after)),
        notices=notices,
        deploy=deploy,
    )
    if not wrote:
        return None
    written = replace(after, revision=before.revision + 1)
    for n in notices:
        log.info("rollout %s: %s", after.id, n["text"])
    if any(isinstance(a, SetWeight) for a in actions):
        return await apply_weight(rollouts, store, written)
    return written


async def apply_weight(rollouts: RolloutStore, store: StateStore, r: Rollout) -> Rollout:
    """Set the rollout's weight (the path `weight` and the kill switch take: every proxy
    hears it on pub/sub), then mark it applied."""
    await store.set_weight(r.target)
    done = replace(r, applied=True)
    if await rollouts.replace(r.revision, record_of(done), audited=None):
        return replace(done, revision=r.revision + 1)
    return r


async def reconcile(rollouts: RolloutStore, store: StateStore, r: Rollout) -> Rollout:
    """Finish a weight write its writer did not live to make."""
    return r if r.applied else await apply_weight(rollouts, store, r)
