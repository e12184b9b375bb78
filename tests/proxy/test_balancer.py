from __future__ import annotations

import random
from collections import Counter

from proxy.balancer import Balancer

POOL = ("http://a:1", "http://b:1", "http://c:1")


def test_picks_the_backend_with_fewest_outstanding() -> None:
    b = Balancer(random.Random(1))
    b.acquire("http://a:1")
    b.acquire("http://b:1")
    assert b.pick(POOL) == "http://c:1"
    b.acquire("http://c:1")
    b.acquire("http://c:1")
    assert b.pick(POOL) in ("http://a:1", "http://b:1")


def test_ties_are_broken_at_random_and_evenly() -> None:
    b = Balancer(random.Random(3))
    picks = Counter(b.pick(POOL) for _ in range(3000))
    # 1000 expected each; +/-150 is about 5 standard deviations.
    assert all(850 <= n <= 1150 for n in picks.values()), picks


def test_release_returns_to_zero_and_forgets() -> None:
    b = Balancer()
    b.acquire("http://a:1")
    b.release("http://a:1")
    assert dict(b.outstanding) == {}
