"""The routing decision, tested with plain values (no sockets)."""

from __future__ import annotations

import random

import pytest

from proxy.routing import RequestFacts, blocking_flag, decide, facts_from, normalise_path
from state import Alert, Snapshot

BOTH = Snapshot(production=("http://p:1",), staging=("http://s:1",), weight=30)
NO_COOKIE = RequestFacts(bucket=None, override=None)


def test_cookieless_split_is_the_weight_within_two_points() -> None:
    # 10,000 draws, tolerance +/-2 points (about 4.4 standard deviations).
    rng = random.Random(7)
    staging = sum(decide(BOTH, NO_COOKIE, rng.randrange(100)).version == "staging" for _ in range(10_000))
    assert 2800 <= staging <= 3200


@pytest.mark.parametrize(("weight", "expected"), [(0, "production"), (100, "staging")])
def test_weight_0_and_100_are_exact(weight: int, expected: str) -> None:
    snap = Snapshot(production=BOTH.production, staging=BOTH.staging, weight=weight)
    assert {decide(snap, NO_COOKIE, draw).version for draw in range(100)} == {expected}


def test_bucket_decides_and_raising_the_weight_only_adds_users() -> None:
    for bucket in range(100):
        facts = RequestFacts(bucket=bucket, override=None)
        was_staging = False
        for weight in range(101):
            snap = Snapshot(production=BOTH.production, staging=BOTH.staging, weight=weight)
            decision = decide(snap, facts, draw=99 - bucket)
            assert decision.bucket == bucket and not decision.new_bucket
            on_staging = decision.version == "staging"
            assert on_staging == (bucket < weight)
            assert on_staging or not was_staging, "a user left staging when the weight went up"
            was_staging = on_staging


def test_without_a_cookie_the_draw_becomes_the_new_bucket() -> None:
    decision = decide(BOTH, NO_COOKIE, draw=12)
    assert (decision.bucket, decision.new_bucket, decision.version) == (12, True, "staging")


def test_alert_sends_everything_to_production_even_forced_testers() -> None:
    snap = Snapshot(
        production=BOTH.production, staging=BOTH.staging, weight=100, alert=Alert("monitor", "cpu", 1.0)
    )
    for facts in (NO_COOKIE, RequestFacts(0, None), RequestFacts(None, "always")):
        assert decide(snap, facts, 0).version == "production"
        assert decide(snap, facts, 0).reason == "alert"


def test_empty_staging_pool_means_all_production() -> None:
    snap = Snapshot(production=BOTH.production, staging=(), weight=100)
    assert {decide(snap, NO_COOKIE, d).version for d in range(100)} == {"production"}


def test_empty_production_falls_back_to_staging() -> None:
    snap = Snapshot(production=(), staging=BOTH.staging, weight=0)
    assert decide(snap, NO_COOKIE, 50).version == "staging"


def test_override_forces_a_version_unless_turned_off() -> None:
    assert decide(BOTH, RequestFacts(99, "always"), 0).version == "staging"
    assert decide(BOTH, RequestFacts(0, "never"), 0).version == "production"
    assert decide(BOTH, RequestFacts(99, "always"), 0, allow_override=False).version == "production"


@pytest.mark.parametrize(
    ("cookie", "header", "bucket", "override"),
    [
        (None, None, None, None),
        ("sy_bucket=7", None, 7, None),
        ("a=1; sy_bucket=42; b=2", None, 42, None),
        ('sy_bucket="5"', None, 5, None),
        ("sy_bucket=100", None, None, None),
        ("sy_bucket=-1", None, None, None),
        ("sy_bucket=abc", None, None, None),
        ("sy_bucket=\u00b2", None, None, None),
        ("sy_bucket=\u0663", None, None, None),
        ("canary=always", None, None, "always"),
        ("canary=never", "always", None, "always"),
        ("canary=bogus", "Never", None, "never"),
        (None, "maybe", None, None),
    ],
)
def test_facts_from_cookie_and_header(
    cookie: str | None, header: str | None, bucket: int | None, override: str | None
) -> None:
    facts = facts_from(cookie, header)
    assert (facts.bucket, facts.override) == (bucket, override)


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/set", "/set"),
        ("/set?key=a", "/set"),
        ("/SET", "/set"),
        ("/%73et", "/set"),
        ("//set", "/set"),
        ("/x/../set", "/set"),
        ("/./set/", "/set"),
        ("http://example.com/set?x", "/set"),
        ("/settings", "/settings"),
        ("/", "/"),
        ("/set;a=b", "/set"),
        ("/.;/set", "/set"),
        ("/x/..;/set", "/set"),
        ("/%5cset", "/set"),
        ("/\\set", "/set"),
        ("/a\\..\\set;jsessionid=1?x", "/set"),
    ],
)
def test_normalise_path(target: str, path: str) -> None:
    assert normalise_path(target) == path


def test_flag_blocks_bound_routes_only_while_on() -> None:
    off = Snapshot(flags={"disableSET": False})
    on = Snapshot(flags={"disableSET": True})
    assert blocking_flag(off, "/set") is None
    assert blocking_flag(on, "/set") == "disableSET"
    assert blocking_flag(on, "/set/a/b") == "disableSET"
    assert blocking_flag(on, "/settings") is None
    assert blocking_flag(on, "/get") is None
    custom = Snapshot(flags={"beta": True}, flag_routes={"beta": ("/beta", "/new")})
    assert blocking_flag(custom, "/new/x") == "beta"
    assert blocking_flag(custom, "/set") is None
