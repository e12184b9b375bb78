"""A rollout as a value: its plan, where it is, what the judge said at each step.

Plain data with a JSON form (what state/rollouts.py stores); no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Literal

Promote = Literal["deploy", "hold"]
DEFAULT_STEPS = (5, 10, 25, 50, 100)


class RolloutError(ValueError):
    """A plan, a command or a stored record that cannot be used; the message says why."""


class Status(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # by hand or by an alert; resumed only by hand
    HELD = "held"  # paused because the judge stayed INCONCLUSIVE: not enough traffic
    PROMOTING = "promoting"  # every step passed; the deploy to production is asked for
    ABORTED = "aborted"  # the judge failed the canary, or someone aborted it
    DONE = "done"


ACTIVE = frozenset({Status.RUNNING, Status.PAUSED, Status.HELD, Status.PROMOTING})


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[int, ...] = DEFAULT_STEPS
    step_s: float = 60.0
    max_inconclusive: int = 3  # extra waits of step_s on an INCONCLUSIVE step before holding
    promote: Promote = "hold"
    # FAIL windows the rollout rides out (each re-judged on a fresh window) before it
    # aborts: one GC pause on a canary server fills a short window's p99 (Flagger's
    # `threshold`, Argo's `failureLimit`). A catastrophic error rate aborts at once.
    failure_limit: int = 1

    def __post_init__(self) -> None:
        if not self.steps or any(not 1 <= s <= 100 for s in self.steps):
            raise RolloutError("steps must be percentages 1-100, such as 5,10,25,50,100")
        if list(self.steps) != sorted(set(self.steps)):
            raise RolloutError("steps must rise, each once, such as 5,10,25,50,100")
        if self.steps[0] == 100:
            raise RolloutError("steps need one below 100: the judge compares the canary with production")
        if not 0 < self.step_s <= 86_400:
            raise RolloutError("step-s must be a number of seconds above 0, at most 86400")
        if not 0 <= self.max_inconclusive <= 1000:
            raise RolloutError("max-inconclusive must be a whole number 0-1000")
        if not 0 <= self.failure_limit <= 100:
            raise RolloutError("failure-limit must be a whole number 0-100")
        if self.promote not in ("deploy", "hold"):
            raise RolloutError("promote must be deploy or hold")


def parse_steps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise RolloutError(f"steps {text!r} are not whole numbers: use 5,10,25,50,100") from exc


@dataclass(frozen=True, slots=True)
class Judged:
    """One verdict, as the audit log and the dashboard show it."""

    step: int  # index into the plan's steps
    weight: int
    outcome: str  # PASS, FAIL or INCONCLUSIVE
    at: float
    start: float  # the window the judge saw
    end: float
    explain: str
    verdict: Mapping[str, object] = field(default_factory=dict)  # Verdict.to_dict()


@dataclass(frozen=True, slots=True)
class Rollout:
    id: str
    plan: Plan
    by: str
    release: str  # the staging release (sha) being rolled out, "unknown" if none was known
    weight_before: int  # production traffic's share to staging before the rollout
    started_at: float
    status: Status = Status.RUNNING
    step: int = 0
    step_started: float = 0.0  # the judge's window begins here
    due_at: float = 0.0  # the judge runs at this time
    inconclusive: int = 0  # INCONCLUSIVE verdicts on the current step
    failures: int = 0  # FAIL verdicts so far, each followed by a fresh window
    reason: str = ""
    history: tuple[Judged, ...] = ()
    deploy_request: str = ""  # the id of the deploy asked for on promotion
    target: int = 0  # the weight this rollout set last (what every proxy should route by)
    applied: bool = False  # whether `target` was written: a leader that died before leaves it False
    revision: int = 0  # bumped by every write: a step is judged by one writer only

    @property
    def weight(self) -> int:
        return self.plan.steps[self.step]

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def last(self) -> Judged | None:
        return self.history[-1] if self.history else None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["status"] = str(self.status)
        data["plan"]["steps"] = list(self.plan.steps)
        data["history"] = [asdict(j) | {"verdict": dict(j.verdict)} for j in self.history]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Rollout:
        try:
            plan = dict(data["plan"])  # type: ignore[call-overload]
            plan["steps"] = tuple(int(s) for s in plan["steps"])
            history = tuple(Judged(**dict(j)) for j in data.get("history", ()))  # type: ignore[attr-defined]
            fields = {k: v for k, v in data.items() if k not in ("plan", "history", "status")}
            return replace(
                cls(plan=Plan(**plan), **fields),  # type: ignore[arg-type]
                status=Status(str(data["status"])),
                history=history,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RolloutError(f"unreadable rollout record: {exc}") from exc
