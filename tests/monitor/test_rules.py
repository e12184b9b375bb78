"""The rule state machine with a controlled clock: no sockets, no sleeping."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

import pytest

from monitor.rules import Event, Phase, Rule, RuleState, step

CPU = Rule("cpu", "cpu", threshold=50.0, recover_below=40.0, for_samples=3, repeat_s=3600.0)
INTERVAL = 5.0


def feed(
    rule: Rule, values: Iterable[float], *, state: RuleState | None = None, start: float = 1000.0
) -> tuple[RuleState, list[Event], list[Phase]]:
    """Step through `values`, one every INTERVAL seconds from `start`."""
    state = state or RuleState()
    events: list[Event] = []
    phases: list[Phase] = []
    now = start
    for value in values:
        state, event = step(rule, state, value, now, max_gap_s=3 * INTERVAL)
        phases.append(state.phase)
        if event is not None:
            events.append(event)
        now += INTERVAL
    return state, events, phases


def test_fires_after_three_consecutive_samples_above() -> None:
    state, events, phases = feed(CPU, [60, 70, 80])
    assert phases == [Phase.PENDING, Phase.PENDING, Phase.FIRING]
    assert [e.kind for e in events] == ["firing"]
    fired = events[0]
    assert (fired.value, fired.peak, fired.since, fired.at) == (80, 80, 1000.0, 1010.0)
    assert state.fired_at == 1010.0 and state.since == 1000.0


def test_a_dip_before_the_third_sample_starts_over() -> None:
    _, events, phases = feed(CPU, [60, 70, 45, 60, 70])
    assert events == []
    assert phases == [Phase.PENDING, Phase.PENDING, Phase.INACTIVE, Phase.PENDING, Phase.PENDING]


def test_the_threshold_itself_is_not_above() -> None:
    _, events, _ = feed(CPU, [50, 50, 50, 50])
    assert events == []


def test_hysteresis_keeps_firing_between_recover_and_threshold() -> None:
    state, events, _ = feed(CPU, [60, 60, 60, 45, 41, 40, 49, 42])
    assert [e.kind for e in events] == ["firing"]
    assert state.phase is Phase.FIRING


def test_resolves_after_three_consecutive_samples_below_recover() -> None:
    state, events, phases = feed(CPU, [60, 90, 60, 30, 35, 39])
    assert [e.kind for e in events] == ["firing", "resolved"]
    resolved = events[1]
    assert resolved.value == 39 and resolved.peak == 90 and resolved.since == 1000.0
    assert phases[-3:] == [Phase.FIRING, Phase.FIRING, Phase.RESOLVED]
    assert state.resolved_at == resolved.at


def test_one_sample_back_above_recover_restarts_the_resolve_count() -> None:
    _, events, _ = feed(CPU, [60, 60, 60, 30, 30, 45, 30, 30])
    assert [e.kind for e in events] == ["firing"]


def test_resolved_rule_fires_again_on_a_new_breach() -> None:
    _, events, phases = feed(CPU, [60, 60, 60, 10, 10, 10, 70, 70, 70])
    assert [e.kind for e in events] == ["firing", "resolved", "firing"]
    assert phases[6] is Phase.PENDING
    assert events[2].since == 1000.0 + 6 * INTERVAL


def test_for_duration_instead_of_samples() -> None:
    rule = Rule("cpu", "cpu", threshold=50, recover_below=40, for_s=12.0)
    # 0 s, 5 s, 10 s above: not yet 12 s; 15 s: fires.
    _, events, phases = feed(rule, [60, 60, 60, 60])
    assert phases == [Phase.PENDING, Phase.PENDING, Phase.PENDING, Phase.FIRING]
    assert events[0].at - events[0].since == 15.0


def test_for_zero_seconds_fires_on_the_first_sample() -> None:
    rule = Rule("cpu", "cpu", threshold=50, recover_below=40, for_s=0.0)
    _, events, _ = feed(rule, [60])
    assert [e.kind for e in events] == ["firing"]


def test_repeat_only_after_the_repeat_interval() -> None:
    rule = Rule("cpu", "cpu", threshold=50, recover_below=40, for_samples=1, repeat_s=60.0)
    # 5 s samples for 3 minutes, always above: fire at t=0, repeats at 60, 120, 180.
    _, events, _ = feed(rule, [70] * 37)
    assert [e.kind for e in events] == ["firing", "repeat", "repeat", "repeat"]
    assert [e.at - 1000.0 for e in events] == [0.0, 60.0, 120.0, 180.0]


def test_repeat_zero_never_repeats() -> None:
    rule = Rule("cpu", "cpu", threshold=50, recover_below=40, for_samples=1, repeat_s=0.0)
    _, events, _ = feed(rule, [70] * 1000)
    assert [e.kind for e in events] == ["firing"]


def test_flapping_around_the_threshold_sends_at_most_one_email_per_repeat_interval() -> None:
    """Six simulated hours of load wandering 41-65% around a 50% threshold, every 5 s."""
    rule = Rule("cpu", "cpu", threshold=50, recover_below=40, for_samples=3, repeat_s=3600.0)
    rng = random.Random(7)
    values = [rng.uniform(41, 65) for _ in range(6 * 3600 // 5)]
    _, events, phases = feed(rule, values)
    flips = sum(1 for a, b in itertools.pairwise(values) if (a > 50) != (b > 50))
    assert flips > 1000, "the load must really cross the threshold often"
    kinds = [e.kind for e in events]
    assert kinds[0] == "firing" and set(kinds[1:]) <= {"repeat"}
    # One email to start, then at most one per hour: 1 + 6.
    assert len(events) <= 1 + 6
    for a, b in itertools.pairwise(events):
        assert b.at - a.at >= 3600.0
    assert phases[-1] is Phase.FIRING


def test_flapping_across_both_bounds_without_dwelling_sends_nothing() -> None:
    # Up and down every sample: never three in a row on either side.
    _, events, _ = feed(CPU, [80, 20] * 500)
    assert events == []


def test_a_gap_breaks_a_pending_streak() -> None:
    state, _, _ = feed(CPU, [60, 60])
    # The monitor was down for an hour: the next high sample starts a new streak.
    state, event = step(CPU, state, 60, 1010.0 + 3600, max_gap_s=15.0)
    assert event is None and state.phase is Phase.PENDING and state.streak == 1
    assert state.since == 1010.0 + 3600


def test_a_gap_keeps_a_firing_rule_firing_and_reminds_if_due() -> None:
    state, events, _ = feed(CPU, [60, 60, 60])
    assert state.phase is Phase.FIRING
    state, event = step(CPU, state, 45, 1010.0 + 7200, max_gap_s=15.0)
    assert state.phase is Phase.FIRING
    assert event is not None and event.kind == "repeat" and event.since == events[0].since


def test_state_round_trips_through_its_stored_form() -> None:
    state, _, _ = feed(CPU, [60, 60, 60, 30])
    data = state.to_dict()
    assert data["phase"] == "firing"
    assert RuleState.from_dict({**data, "rule": {"metric": "cpu"}}) == state


@pytest.mark.parametrize(
    "data",
    [{}, {"phase": "burning"}, {"phase": "firing", "since": "yesterday"}, {"phase": "firing", "streak": "x"}],
)
def test_unreadable_states_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"rule state|not a"):
        RuleState.from_dict(data)
