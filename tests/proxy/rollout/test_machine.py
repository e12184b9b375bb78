"""The rollout state machine with plain values: verdicts in, the next state and actions out."""

from __future__ import annotations

import pytest

from proxy.analysis import MetricVerdict, Outcome, Verdict
from proxy.rollout import machine
from proxy.rollout.machine import Notify, RequestDeploy, SetWeight
from proxy.rollout.model import Plan, Rollout, RolloutError, Status, parse_steps
from proxy.rollout.trigger import should_start
from state import DeployRecord

PLAN = Plan(steps=(10, 50, 100), step_s=60, max_inconclusive=2)


def verdict(outcome: Outcome) -> Verdict:
    m = MetricVerdict("errors", outcome, "test", 0.01, 0.01, 0.02, 500, 5000, None, None, "fisher", 1.0, 0.5)
    return Verdict(outcome, (m,))


PASS, FAIL, INCONCLUSIVE = (verdict(o) for o in (Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE))


def started(plan: Plan = PLAN, release: str = "abc123") -> Rollout:
    r, actions = machine.start(plan, rollout_id="r1", by="me", release=release, weight_before=0, now=1000)
    assert actions == (SetWeight(plan.steps[0]),)
    return r


def test_start_sets_the_first_step_and_is_due_one_step_later() -> None:
    r = started()
    assert (r.status, r.step, r.target, r.step_started, r.due_at) == (Status.RUNNING, 0, 10, 1000, 1060)
    assert not machine.is_due(r, 1059.9)
    assert machine.is_due(r, 1060)


def test_pass_moves_to_the_next_step_with_a_fresh_window() -> None:
    r, actions = machine.judged(started(), PASS, 1061)
    assert actions == (SetWeight(50),)
    assert (r.step, r.target, r.step_started, r.due_at, r.status) == (1, 50, 1061, 1121, Status.RUNNING)
    assert [j.outcome for j in r.history] == ["PASS"]
    assert (r.history[0].start, r.history[0].end, r.history[0].weight) == (1000, 1061, 10)


def test_a_first_fail_judges_the_step_again_on_a_fresh_window() -> None:
    r, actions = machine.judged(started(), FAIL, 1061)
    assert actions == () and r.status is Status.RUNNING
    assert (r.step, r.target, r.failures, r.step_started, r.due_at) == (0, 10, 1, 1061, 1121)
    assert [j.outcome for j in r.history] == ["FAIL"]
    # The second FAIL, on the fresh window, is past the limit of 1: abort.
    r, actions = machine.judged(r, FAIL, 1121)
    assert r.status is Status.ABORTED and r.target == 0 and r.failures == 2
    assert actions[0] == SetWeight(0)


def test_failures_count_across_steps_and_a_pass_after_one_goes_on() -> None:
    r, _ = machine.judged(started(), FAIL, 1061)
    r, _ = machine.judged(r, PASS, 1121)
    assert (r.step, r.failures, r.status) == (1, 1, Status.RUNNING)
    r, _ = machine.judged(r, FAIL, 1181)
    assert r.status is Status.ABORTED


def test_a_catastrophic_fail_aborts_at_once_whatever_the_limit() -> None:
    m = MetricVerdict(
        "errors", Outcome.FAIL, "catastrophic", 0.9, 0.0, None, 30, 5000, None, None, "", None, None, True
    )
    r, _ = machine.judged(started(Plan(steps=(10, 100), step_s=60, failure_limit=5)), Verdict.of((m,)), 1061)
    assert r.status is Status.ABORTED and r.failures == 1


def test_fail_aborts_at_weight_zero_and_notifies_with_the_explanation() -> None:
    r, actions = machine.judged(started(Plan(steps=(10, 50, 100), step_s=60, failure_limit=0)), FAIL, 1061)
    assert r.status is Status.ABORTED and r.target == 0
    assert actions[0] == SetWeight(0)
    notice = actions[1]
    assert isinstance(notice, Notify) and notice.kind == "aborted"
    assert notice.details == (FAIL.metrics[0].explain(),)


def test_inconclusive_waits_on_the_same_window_then_holds_and_never_promotes() -> None:
    r = started()
    r, actions = machine.judged(r, INCONCLUSIVE, 1060)
    assert actions == () and r.status is Status.RUNNING
    assert (r.inconclusive, r.step_started, r.due_at) == (1, 1000, 1120)
    r, _ = machine.judged(r, INCONCLUSIVE, 1120)
    r, actions = machine.judged(r, INCONCLUSIVE, 1180)
    assert r.status is Status.HELD and r.step == 0 and r.target == 10
    assert "not enough traffic to judge" in r.reason
    assert [type(a) for a in actions] == [Notify]
    assert not machine.is_due(r, 10_000)


def test_max_inconclusive_zero_holds_at_the_first_inconclusive() -> None:
    r, _ = machine.judged(started(Plan(steps=(10,), step_s=1, max_inconclusive=0)), INCONCLUSIVE, 1001)
    assert r.status is Status.HELD


def test_a_pass_after_inconclusive_resets_the_count() -> None:
    r, _ = machine.judged(started(), INCONCLUSIVE, 1060)
    r, _ = machine.judged(r, PASS, 1120)
    assert (r.step, r.inconclusive) == (1, 0)


def test_after_the_last_step_hold_ends_at_100_and_says_what_to_do() -> None:
    r = started()
    for now in (1060, 1120):
        r, actions = machine.judged(r, PASS, now)
    assert r.status is Status.DONE and r.target == 100
    assert [j.weight for j in r.history] == [10, 50]  # 100% leaves no production to judge against
    assert actions[0] == SetWeight(100)
    assert "deploy abc123 to production" in r.reason and "weight 0" in r.reason


def test_after_the_last_step_deploy_asks_for_the_release_then_restores_the_weight() -> None:
    r = started(Plan(steps=(50, 100), step_s=1, promote="deploy"))
    r, actions = machine.judged(r, PASS, 1001)
    assert r.status is Status.PROMOTING
    assert RequestDeploy("r1-deploy", "abc123") in actions and r.deploy_request == "r1-deploy"
    done, actions = machine.deployed(r, True, "2 servers")
    assert done.status is Status.DONE and done.target == 0 and actions[0] == SetWeight(0)
    held, actions = machine.deployed(r, False, "health check failed")
    assert held.status is Status.HELD and held.target == 100 and "failed" in held.reason


def test_deploy_promotion_of_an_unknown_release_ends_at_100_without_a_deploy() -> None:
    r = started(Plan(steps=(50,), step_s=1, promote="deploy"), release="")
    r, actions = machine.judged(r, PASS, 1001)
    assert r.status is Status.DONE and not any(isinstance(a, RequestDeploy) for a in actions)


def test_an_alert_pauses_a_running_rollout_and_clearing_it_resumes_nothing() -> None:
    r, actions = machine.alert(started(), "cpu 97%")
    assert r.status is Status.PAUSED and "kill switch" in r.reason and len(actions) == 1
    assert not machine.is_due(r, 10_000)
    aborted, _ = machine.command(started(), "abort", "", 1001)
    assert machine.alert(aborted, "x") == (aborted, ())


def test_an_aborted_rollout_does_not_resume() -> None:
    aborted, _ = machine.judged(started(Plan(steps=(10, 100), step_s=60, failure_limit=0)), FAIL, 1061)
    assert aborted.status is Status.ABORTED
    with pytest.raises(RolloutError, match="does not resume"):
        machine.command(aborted, "resume", "", 1100)


def test_pause_then_resume_restarts_the_step_window_and_reapplies_its_weight() -> None:
    r, _ = machine.command(started(), "pause", "lunch", 1010)
    assert r.status is Status.PAUSED and r.reason == "lunch"
    r, actions = machine.command(r, "resume", "", 2000)
    assert actions == (SetWeight(10),)
    assert (r.status, r.step_started, r.due_at) == (Status.RUNNING, 2000, 2060)


def test_a_held_rollout_resumes_with_a_fresh_count() -> None:
    r = started(Plan(steps=(10,), step_s=1, max_inconclusive=0))
    r, _ = machine.judged(r, INCONCLUSIVE, 1001)
    r, _ = machine.command(r, "resume", "", 1002)
    assert (r.status, r.inconclusive) == (Status.RUNNING, 0)


def test_promote_by_hand_skips_ahead_from_any_step() -> None:
    r, actions = machine.command(started(), "promote", "", 1001)
    assert r.status is Status.DONE and SetWeight(100) in actions


def test_abort_by_hand_sets_weight_zero() -> None:
    r, actions = machine.command(started(), "abort", "bad UI", 1001)
    assert (r.status, r.reason, r.target) == (Status.ABORTED, "bad UI", 0) and actions[0] == SetWeight(0)


@pytest.mark.parametrize("what", ["pause", "resume", "abort", "promote"])
def test_a_finished_rollout_refuses_every_command(what: machine.Command) -> None:
    done, _ = machine.command(started(), "promote", "", 1001)
    with pytest.raises(RolloutError, match="done"):
        machine.command(done, what, "", 1002)


def test_repeated_pause_and_resume_change_nothing() -> None:
    r = started()
    assert machine.command(r, "resume", "", 1001) == (r, ())
    paused, _ = machine.command(r, "pause", "", 1001)
    assert machine.command(paused, "pause", "", 1002) == (paused, ())


def test_the_record_round_trips_through_json() -> None:
    r, _ = machine.judged(started(), PASS, 1061)
    assert Rollout.from_json(r.to_json()) == r


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"steps": ()}, "percentages"),
        ({"steps": (0, 50)}, "percentages"),
        ({"steps": (50, 10)}, "rise"),
        ({"steps": (10, 10)}, "rise"),
        ({"steps": (100,)}, "below 100"),
        ({"step_s": 0}, "step-s"),
        ({"max_inconclusive": -1}, "max-inconclusive"),
        ({"failure_limit": -1}, "failure-limit"),
        ({"promote": "ship"}, "promote"),
    ],
)
def test_a_bad_plan_is_refused_with_a_message(plan: dict[str, object], message: str) -> None:
    with pytest.raises(RolloutError, match=message):
        Plan(**plan)  # type: ignore[arg-type]


def test_steps_parse_from_the_command_line_form() -> None:
    assert parse_steps("5,10,25") == (5, 10, 25)
    with pytest.raises(RolloutError, match="whole numbers"):
        parse_steps("5,ten")


def test_an_unreadable_record_is_refused() -> None:
    with pytest.raises(RolloutError, match="unreadable"):
        Rollout.from_json({"id": "x"})


def deploy(
    at: float, *, env: str = "staging", result: str = "succeeded", action: str = "deploy"
) -> DeployRecord:
    return DeployRecord(env, action, "f" * 40, result, "test", at)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "current", "now", "starts"),
    [
        (deploy(1000), None, 1010, True),
        (deploy(1000), None, 1000 + 601, False),  # too old: a proxy started long after it
        (deploy(1000, result="failed"), None, 1010, False),
        (deploy(1000, action="rollback"), None, 1010, False),
        (deploy(1100), "aborted-at-1000", 1110, True),  # a new deploy after the last rollout
        (deploy(900), "aborted-at-1000", 1110, False),  # the deploy the last rollout was of
        (deploy(1100), "running-at-1000", 1110, False),  # never under a running rollout
        (None, None, 1010, False),
    ],
)
def test_a_staging_deploy_starts_a_rollout_only_when_new_and_nothing_runs(
    record: DeployRecord | None, current: str | None, now: float, starts: bool
) -> None:
    rollout = None
    if current is not None:
        rollout = started()
        if current.startswith("aborted"):
            rollout, _ = machine.command(rollout, "abort", "", 1001)
    assert should_start(record, rollout, now) is starts
