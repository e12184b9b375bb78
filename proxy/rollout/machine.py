"""The rollout state machine, pure: a rollout and an event in, the next rollout and
what to do out. No I/O, no clock: `now` is an argument.

PASS moves to the next step (a step at 100% is the promotion: with all traffic on
the canary no production is left to judge it against); FAIL judges the same step
again on a fresh window, up to the plan's `failure_limit` FAILs in the rollout,
then aborts (weight 0), and a catastrophic FAIL aborts at once;
INCONCLUSIVE waits another step-s on the same window, up to `max_inconclusive`
times, then holds: never a promotion on no data. An alert pauses a running
rollout; nothing resumes one but a person, and nothing resumes an aborted one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from proxy.analysis import Outcome, Verdict
from proxy.rollout.model import Judged, Plan, Rollout, RolloutError, Status

Command = Literal["pause", "resume", "abort", "promote"]
COMMANDS: tuple[Command, ...] = ("pause", "resume", "abort", "promote")
UNKNOWN_RELEASE = "unknown"


@dataclass(frozen=True, slots=True)
class SetWeight:
    percent: int


@dataclass(frozen=True, slots=True)
class Notify:
    kind: str  # aborted, held, paused, promoting, done
    text: str  # one line
    details: tuple[str, ...] = ()  # the verdict's explanation, one metric a line


@dataclass(frozen=True, slots=True)
class RequestDeploy:
    request: str
    sha: str


Action = SetWeight | Notify | RequestDeploy
Transition = tuple[Rollout, tuple[Action, ...]]


def _start(
    plan: Plan, *, rollout_id: str, by: str, release: str, weight_before: int, now: float
) -> Transition:
    rollout = Rollout(
        id=rollout_id,
        plan=plan,
        by=by,
        release=release or UNKNOWN_RELEASE,
        weight_before=weight_before,
        started_at=now,
        step_started=now,
        due_at=now + plan.step_s,
    )
    return rollout, (SetWeight(plan.steps[0]),)


def is_due(rollout: Rollout, now: float) -> bool:
    return rollout.status is Status.RUNNING and now >= rollout.due_at


def _judged(rollout: Rollout, verdict: Verdict, now: float, end: float | None) -> Transition:
    r = rollout
    record = Judged(
        step=r.step,
        weight=r.weight,
        outcome=str(verdict.outcome),
        at=now,
        start=r.step_started,
        end=now if end is None else end,
        explain=verdict.explain(),
        verdict=verdict.to_dict(),
    )
    r = replace(r, history=(*r.history, record))
    details = tuple(m.explain() for m in verdict.metrics)
    if verdict.outcome is Outcome.FAIL:
        failures = r.failures + 1
        if failures > r.plan.failure_limit or verdict.decisive:
            return _abort(
                replace(r, failures=failures), f"the judge failed the canary at {r.weight}%", details
            )
        # A fresh window, not the bad one grown: what made it bad must not count twice.
        again = replace(r, failures=failures, inconclusive=0, step_started=now, due_at=now + r.plan.step_s)
        return again, ()
    if verdict.outcome is Outcome.INCONCLUSIVE:
        waits = r.inconclusive + 1
        if waits > r.plan.max_inconclusive:
            reason = (
                f"not enough traffic to judge at {r.weight}% after {waits} windows of {r.plan.step_s:g} s:"
                " resume to wait again, or promote or abort by hand"
            )
            held = replace(r, status=Status.HELD, reason=reason, inconclusive=waits)
            return held, (Notify("held", f"rollout {r.id} held: {reason}", details),)
        return replace(r, inconclusive=waits, due_at=now + r.plan.step_s), ()
    # A step at 100% leaves production no traffic to compare with: reaching it is the promotion.
    if r.step + 1 < len(r.plan.steps) and r.plan.steps[r.step + 1] < 100:
        step = r.step + 1
        nxt = replace(r, step=step, step_started=now, due_at=now + r.plan.step_s, inconclusive=0, reason="")
        return nxt, (SetWeight(r.plan.steps[step]),)
    return _promote(r, "every step passed")


def _command(rollout: Rollout, what: Command, reason: str, now: float) -> Transition:
    """A person's pause, resume, abort or promote; RolloutError when it does not apply."""
    r, status = rollout, rollout.status
    if what == "pause":
        if status in (Status.PAUSED, Status.HELD):
            return r, ()
        _require(r, status is Status.RUNNING, "pause")
        return replace(r, status=Status.PAUSED, reason=reason or "paused by hand"), ()
    if what == "resume":
        if status is Status.RUNNING:
            return r, ()
        if status is Status.ABORTED:
            raise RolloutError(
                f"rollout {r.id} was aborted ({r.reason}): it does not resume, start a new one"
            )
        _require(r, status in (Status.PAUSED, Status.HELD), "resume")
        # A fresh window: what was served while paused says nothing about now.
        resumed = replace(
            r, status=Status.RUNNING, reason="", inconclusive=0, step_started=now, due_at=now + r.plan.step_s
        )
        return resumed, (SetWeight(r.weight),)
    if what == "abort":
        _require(r, r.active, "abort")
        return _abort(r, reason or "aborted by hand", ())
    _require(r, status in (Status.RUNNING, Status.PAUSED, Status.HELD), "promote")
    return _promote(r, reason or "promoted by hand")


def _alert(rollout: Rollout, reason: str) -> Transition:
    """The kill switch went on: a running rollout pauses (and stays paused once it is off)."""
    if rollout.status is not Status.RUNNING:
        return rollout, ()
    why = f"the kill switch is on ({reason or 'no reason given'}): resume by hand once it is cleared"
    paused = replace(rollout, status=Status.PAUSED, reason=why)
    return paused, (Notify("paused", f"rollout {rollout.id} paused: {why}"),)


def _deployed(rollout: Rollout, ok: bool, detail: str) -> Transition:
    """The provisioner's answer to the promotion's deploy request."""
    r = rollout
    if r.status is not Status.PROMOTING:
        return r, ()
    if ok:
        text = (
            f"rollout {r.id} done: {r.release} is deployed to production; weight back to {r.weight_before}%"
        )
        return replace(r, status=Status.DONE, reason=detail), (
            SetWeight(r.weight_before),
            Notify("done", text),
        )
    reason = f"the deploy of {r.release} to production failed ({detail}): staging keeps 100%"
    return replace(r, status=Status.HELD, reason=reason), (Notify("held", f"rollout {r.id} held: {reason}"),)


def _abort(r: Rollout, reason: str, details: tuple[str, ...]) -> Transition:
    aborted = replace(r, status=Status.ABORTED, reason=reason)
    return aborted, (SetWeight(0), Notify("aborted", f"rollout {r.id} aborted: {reason}; weight 0", details))


def _promote(r: Rollout, reason: str) -> Transition:
    if r.plan.promote == "deploy" and r.release != UNKNOWN_RELEASE:
        why = f"{reason}: deploying {r.release} to production"
        promoting = replace(r, status=Status.PROMOTING, reason=why, deploy_request=f"{r.id}-deploy")
        return promoting, (
            SetWeight(100),
            RequestDeploy(promoting.deploy_request, r.release),
            Notify("promoting", f"rollout {r.id}: {why}"),
        )
    sha = r.release if r.release != UNKNOWN_RELEASE else "the staging release"
    why = (
        f"{reason}: staging takes 100%; deploy {sha} to production (git push it to main),"
        f" then `python -m proxy weight {r.weight_before}`"
    )
    return replace(r, status=Status.DONE, reason=why), (
        SetWeight(100),
        Notify("done", f"rollout {r.id} done: {why}"),
    )


def _require(r: Rollout, ok: bool, what: str) -> None:
    if not ok:
        raise RolloutError(f"rollout {r.id} is {r.status}: it cannot {what}")


def _settled(t: Transition) -> Transition:
    """The rollout with `target` set to the weight its actions set last."""
    rollout, actions = t
    weights = [a.percent for a in actions if isinstance(a, SetWeight)]
    return (replace(rollout, target=weights[-1], applied=False) if weights else rollout), actions


def start(
    plan: Plan, *, rollout_id: str, by: str, release: str, weight_before: int, now: float
) -> Transition:
    return _settled(
        _start(plan, rollout_id=rollout_id, by=by, release=release, weight_before=weight_before, now=now)
    )


def judged(rollout: Rollout, verdict: Verdict, now: float, *, end: float | None = None) -> Transition:
    """The judge's verdict, reached at `now`, on the current step's window: from
    step_started to `end` (now, when not given)."""
    return _settled(_judged(rollout, verdict, now, end))


def command(rollout: Rollout, what: Command, reason: str, now: float) -> Transition:
    """A person's pause, resume, abort or promote; RolloutError when it does not apply."""
    return _settled(_command(rollout, what, reason, now))


def alert(rollout: Rollout, reason: str) -> Transition:
    """The kill switch went on: a running rollout pauses (and stays paused once it is off)."""
    return _settled(_alert(rollout, reason))


def deployed(rollout: Rollout, ok: bool, detail: str) -> Transition:
    """The provisioner's answer to the promotion's deploy request."""
    return _settled(_deployed(rollout, ok, detail))
