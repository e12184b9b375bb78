"""Alert rules as a pure state machine: a rule, its state, one sample in; the next
state and at most one event out. No clock, no I/O: time is passed in.

A rule fires after `for` consecutive samples above `threshold` (or samples
above it for `for_s` seconds) and resolves after as many consecutive samples
below `recover_below`. In between it keeps its state: load hovering around the
threshold raises one alert, then one reminder per `repeat_s`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Literal

Metric = Literal["cpu", "mem"]
METRICS: tuple[Metric, ...] = ("cpu", "mem")
Action = Literal["stop_canary", "scale_up"]
ACTIONS: tuple[Action, ...] = ("stop_canary", "scale_up")
EventKind = Literal["firing", "repeat", "resolved"]


class Phase(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    metric: Metric
    threshold: float  # fires above this percent
    recover_below: float  # resolves below this percent (hysteresis)
    for_samples: int = 3  # consecutive samples, unless for_s is set
    for_s: float | None = None  # seconds of consecutive samples instead
    repeat_s: float = 3600.0  # reminder while firing; 0 = never
    actions: tuple[Action, ...] = ()

    def held(self, count: int, started: float, now: float) -> bool:
        """Whether a streak of `count` samples that began at `started` is long enough."""
        if self.for_s is not None:
            return now - started >= self.for_s
        return count >= self.for_samples


@dataclass(frozen=True, slots=True)
class RuleState:
    phase: Phase = Phase.INACTIVE
    streak: int = 0  # consecutive samples towards the next phase (above while pending, below while firing)
    streak_since: float | None = None
    since: float | None = None  # first sample of the breach that is pending or firing
    fired_at: float | None = None
    notified_at: float | None = None  # last firing or repeat notice
    resolved_at: float | None = None
    last_at: float | None = None  # last sample seen
    value: float | None = None
    peak: float | None = None  # highest value of the current or last breach

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "phase": self.phase.value}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RuleState:
        """The stored form back; ValueError if it is not one."""
        try:
            phase = Phase(str(data["phase"]))
            streak = int(str(data.get("streak", 0)))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"not a rule state: {data!r}") from exc

        def num(name: str) -> float | None:
            value = data.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"rule state field {name} is {value!r}, not a number")
            return float(value)

        return cls(
            phase=phase,
            streak=streak,
            streak_since=num("streak_since"),
            since=num("since"),
            fired_at=num("fired_at"),
            notified_at=num("notified_at"),
            resolved_at=num("resolved_at"),
            last_at=num("last_at"),
            value=num("value"),
            peak=num("peak"),
        )


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    rule: Rule
    value: float
    peak: float
    since: float  # when the breach began
    at: float


def step(
    rule: Rule, state: RuleState, value: float, now: float, *, max_gap_s: float | None = None
) -> tuple[RuleState, Event | None]:
    """Advance `state` by one sample of `value` taken at `now`.

    A gap longer than `max_gap_s` since the last sample (the monitor was down)
    breaks any streak: "consecutive" means consecutive in time too. A firing
    rule stays firing across a gap; only samples below `recover_below` end it.
    """
    gap = max_gap_s is not None and state.last_at is not None and now - state.last_at > max_gap_s
    seen = replace(state, last_at=now, value=value)
    above = value > rule.threshold

    if state.phase is Phase.FIRING:
        peak = max(value, state.peak if state.peak is not None else value)
        if value < rule.recover_below:
            fresh = gap or state.streak == 0 or state.streak_since is None
            streak = 1 if fresh else state.streak + 1
            started = now if fresh or state.streak_since is None else state.streak_since
            if rule.held(streak, started, now):
                since = state.since if state.since is not None else now
                done = replace(
                    seen, phase=Phase.RESOLVED, streak=0, streak_since=None, resolved_at=now, peak=peak
                )
                return done, Event("resolved", rule, value, peak, since, now)
            return replace(seen, streak=streak, streak_since=started, peak=peak), None
        still = replace(seen, streak=0, streak_since=None, peak=peak)
        last = state.notified_at if state.notified_at is not None else now
        if rule.repeat_s > 0 and now - last >= rule.repeat_s:
            since = state.since if state.since is not None else now
            return replace(still, notified_at=now), Event("repeat", rule, value, peak, since, now)
        return still, None

    if not above:
        if state.phase is Phase.PENDING:
            return replace(seen, phase=Phase.INACTIVE, streak=0, streak_since=None, since=None), None
        return seen, None

    continuing = state.phase is Phase.PENDING and not gap and state.since is not None
    streak = state.streak + 1 if continuing else 1
    since = state.since if continuing and state.since is not None else now
    peak = max(value, state.peak) if continuing and state.peak is not None else value
    if rule.held(streak, since, now):
        fired = replace(
            seen,
            phase=Phase.FIRING,
            streak=0,
            streak_since=None,
            since=since,
            fired_at=now,
            notified_at=now,
            resolved_at=None,
            peak=peak,
        )
        return fired, Event("firing", rule, value, peak, since, now)
    return replace(seen, phase=Phase.PENDING, streak=streak, streak_since=since, since=since, peak=peak), None
