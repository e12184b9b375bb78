"""Outlier ejection and the retry budget, as plain values (no sockets)."""

from __future__ import annotations

import random

import pytest

from proxy.outlier import Outliers
from proxy.retry import RetryBudget

POOL = ("http://a:1", "http://b:1", "http://c:1", "http://d:1")
A, B, C, D = POOL


def fail(o: Outliers, backend: str, times: int, now: float = 0.0, *, fallback: bool = False) -> bool:
    ejected = False
    for _ in range(times):
        ejected = o.failure(backend, POOL, now, has_fallback=fallback) or ejected
    return ejected


def test_consecutive_failures_eject_and_a_success_resets_the_count() -> None:
    o = Outliers(consecutive=3)
    assert not fail(o, A, 2)
    o.success(A)
    assert not fail(o, A, 2)
    assert o.healthy(POOL) == POOL
    assert fail(o, A, 1)
    assert o.healthy(POOL) == (B, C, D)


def test_the_period_doubles_on_repeat_and_is_capped() -> None:
    o = Outliers(consecutive=1, base_ejection_s=10, max_ejection_s=35)
    periods = []
    now = 0.0
    for _ in range(4):
        assert fail(o, A, 1, now)
        periods.append(o.ejected[A] - now)
        now = o.ejected[A]
        o.expire(now)
        assert A not in o.ejected
    assert periods == [10, 20, 35, 35]


def test_a_long_healthy_spell_resets_the_period() -> None:
    o = Outliers(consecutive=1, base_ejection_s=10, max_ejection_s=100)
    fail(o, A, 1, 0.0)
    o.expire(10.0)
    fail(o, A, 1, 11.0)
    assert o.ejected[A] == 31.0  # doubled
    o.expire(31.0)
    fail(o, A, 1, 31.0 + 101)
    assert o.ejected[A] == 132.0 + 10  # back to the base period


def test_production_never_loses_more_than_half() -> None:
    o = Outliers(consecutive=1)
    assert fail(o, A, 1) and fail(o, B, 1)
    assert not fail(o, C, 5)
    assert not fail(o, D, 5)
    assert o.healthy(POOL) == (C, D)


def test_a_one_backend_production_pool_is_never_emptied() -> None:
    o = Outliers(consecutive=1)
    assert not o.failure(A, (A,), 0.0, has_fallback=False)
    assert o.healthy((A,)) == (A,)


def test_staging_may_lose_every_backend() -> None:
    o = Outliers(consecutive=1)
    for b in POOL:
        assert fail(o, b, 1, fallback=True)
    assert o.healthy(POOL) == ()


def test_expiry_and_restore_bump_the_generation() -> None:
    o = Outliers(consecutive=1, base_ejection_s=5)
    g0 = o.generation
    fail(o, A, 1, 0.0)
    assert o.generation == g0 + 1 and o.next_expiry() == 5.0
    o.expire(4.9)
    assert A in o.ejected
    o.expire(5.0)
    assert A not in o.ejected and o.generation == g0 + 2
    assert o.next_expiry() == float("inf")


def test_a_failing_health_check_holds_a_backend_out() -> None:
    o = Outliers(consecutive=1, base_ejection_s=5)
    fail(o, A, 1, 0.0)
    o.hold(A, 12.0)
    o.expire(6.0)
    assert A in o.ejected
    o.restore(A, 7.0)  # a passing check brings it back early
    assert A not in o.ejected


def test_forgotten_backends_leave_no_ejection_behind() -> None:
    o = Outliers(consecutive=1)
    fail(o, A, 1)
    o.forget({B, C})
    assert o.ejected == {} and o.health == {}


def test_retry_budget_stays_under_its_share() -> None:
    budget = RetryBudget(ratio=0.2, cap=20)
    rng = random.Random(7)
    retries = requests = 0
    for _ in range(100_000):
        budget.deposit()
        requests += 1
        if rng.random() < 0.5 and budget.withdraw():  # half of all requests would like a retry
            retries += 1
    assert retries <= 0.2 * requests + 20
    assert retries >= 0.19 * requests  # and the budget is really spent, not starved


def test_retry_budget_starts_empty_and_caps_its_savings() -> None:
    budget = RetryBudget(ratio=0.2, cap=3)
    assert not budget.withdraw()
    for _ in range(1000):
        budget.deposit()
    assert [budget.withdraw() for _ in range(4)] == [True, True, True, False]


def test_retry_ratio_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        RetryBudget(ratio=1.5)
