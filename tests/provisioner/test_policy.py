"""The scaling policy with plain values: no Redis, no clock, no sockets."""

from __future__ import annotations

import itertools

import pytest

from provisioner.config import ProvisionerConfig
from provisioner.scale.policy import PolicyConfig, PoolView, decide_scale_in, decide_scale_up, quiet_window
from state import ScaleMarks, ServerRecord
from state.servers import SERVER_STATES

NOW = 100_000.0
CFG = PolicyConfig(
    limits={"production": (1, 4), "staging": (1, 2)},
    hard_cap=5,
    cooldown_s=300,
    scale_in_cpu_percent=20,
    scale_in_window_s=600,
    scale_in_cooldown_s=600,
    sample_max_gap_s=30,
)


def server(
    n: int, *, pool: str = "production", state: str = "active", provider: str = "local", at: float = 0.0
) -> ServerRecord:
    return ServerRecord(
        id=f"sy-{pool[:4]}-{n:04d}",
        pool=pool,  # type: ignore[arg-type]
        provider=provider,
        state=state,  # type: ignore[arg-type]
        created_at=at or float(n),
        updated_at=at or float(n),
        owner="w1",
        url=f"http://127.0.0.1:{9000 + n}",
    )


def view(
    backends: int,
    servers: tuple[ServerRecord, ...] = (),
    *,
    up: float | None = None,
    down: float | None = None,
) -> PoolView:
    # Backends: our servers' URLs first, then hand-added ones.
    ours = [s.url for s in servers if s.pool == "production" and s.state == "active"]
    hand = [f"http://10.0.0.{i}:80" for i in range(backends)]
    return PoolView("production", tuple((ours + hand)[:backends]), servers, ScaleMarks(up=up, down=down))


def quiet(host_count: int = 1, cpu: float = 5.0) -> dict[str, list[tuple[float, float]]]:
    samples = [(NOW - 600 + i * 10, cpu) for i in range(61)]
    return {f"app-{i}": samples for i in range(host_count)}


def test_policy_config_comes_from_the_program_config() -> None:
    cfg = PolicyConfig.of(ProvisionerConfig(production_min=2, production_max=7, hard_cap=9))
    assert cfg.limits["production"] == (2, 7) and cfg.hard_cap == 9


def test_scale_up_when_nothing_stands_in_the_way() -> None:
    decision = decide_scale_up(view(1), CFG, NOW)
    assert decision.act and decision.reason == "pool production: 1 -> 2 backends"


@pytest.mark.parametrize("state", ["provisioning", "draining", "destroying"])
def test_one_operation_at_a_time(state: str) -> None:
    busy = server(1, state=state, pool="staging")
    assert not decide_scale_up(view(1, (busy,)), CFG, NOW).act
    assert "one operation at a time" in decide_scale_up(view(1, (busy,)), CFG, NOW, by_hand=True).reason
    assert not decide_scale_in(view(3, (server(2), busy)), CFG, NOW, quiet()).act


def test_a_failed_clean_up_does_not_block_but_counts_against_the_cap() -> None:
    leaked = tuple(server(i, state="cleanup_failed") for i in range(1, 5))
    assert decide_scale_up(view(1, leaked[:4]), CFG, NOW).act
    assert (
        "hard cap" in decide_scale_up(view(1, (*leaked, server(9, state="cleanup_failed"))), CFG, NOW).reason
    )


@pytest.mark.parametrize(("since", "allowed"), [(0, False), (299.9, False), (300, True), (10_000, True)])
def test_cooldown_after_a_scale_up(since: float, allowed: bool) -> None:
    decision = decide_scale_up(view(1, up=NOW - since), CFG, NOW)
    assert decision.act is allowed
    if not allowed:
        assert decision.reason.startswith("cooldown")
    # By hand skips the cooldown, never the limits.
    assert decide_scale_up(view(1, up=NOW - since), CFG, NOW, by_hand=True).act


def test_limits_hold_over_every_combination() -> None:
    """Exhaustive over pool sizes, managed servers, marks and who asks."""
    for size, managed, last_up, by_hand in itertools.product(
        range(7), range(7), (None, NOW - 10, NOW - 1000), (False, True)
    ):
        servers = tuple(server(i + 1) for i in range(managed))
        decision = decide_scale_up(view(size, servers, up=last_up), CFG, NOW, by_hand=by_hand)
        cooling = not by_hand and last_up is not None and NOW - last_up < CFG.cooldown_s
        expected = size < 4 and managed < 5 and not cooling
        assert decision.act is expected, (size, managed, last_up, by_hand, decision.reason)
        assert decision.reason


@pytest.mark.parametrize(
    ("samples", "ok", "why"),
    [
        ([(NOW - 600 + i * 10, 5.0) for i in range(61)], True, "cpu under 20% for 600s (peak 5.0%)"),
        ([], False, "no samples in the window"),
        ([(NOW - 700, 1.0), (NOW - 5, 1.0)], False, "samples cover only the last 5s of 600s"),
        ([(NOW - 600 + i * 10, 5.0) for i in range(55)], False, "the last sample is 60s old"),
        (
            [(NOW - 600 + i * 10, 5.0) for i in range(61) if not 20 <= i < 25],
            False,
            "a 60s gap between samples",
        ),
        ([(NOW - 600 + i * 10, 19.9 if i else 20.0) for i in range(61)], False, "cpu reached 20.0%"),
        # Exactly at the threshold is not under it; just below is.
        ([(NOW - 600 + i * 10, 19.9) for i in range(61)], True, "cpu under 20% for 600s (peak 19.9%)"),
        # A loud sample before the window does not count.
        ([(NOW - 650, 99.0)] + [(NOW - 600 + i * 10, 5.0) for i in range(61)], True, "cpu under"),
        # Future samples (clock skew) are ignored too.
        ([(NOW - 600 + i * 10, 5.0) for i in range(61)] + [(NOW + 5, 99.0)], True, "cpu under"),
    ],
)
def test_quiet_window(samples: list[tuple[float, float]], ok: bool, why: str) -> None:
    quiet_, reason = quiet_window(samples, CFG, NOW)
    assert quiet_ is ok
    assert reason.startswith(why), reason


def test_scale_in_retires_the_newest_of_our_servers() -> None:
    servers = (server(1, at=10.0), server(2, at=30.0), server(3, at=20.0))
    decision = decide_scale_in(view(4, servers), CFG, NOW, quiet(3))
    assert decision.act and decision.target == servers[1]


def test_scale_in_refusals() -> None:
    ours = server(1)
    cases = {
        "no own server": (view(3), quiet()),
        "at the minimum": (view(1, (ours,)), quiet()),
        "no samples": (view(2, (ours,)), {}),
        "a busy host": (
            view(2, (ours,)),
            {**quiet(2), "app-9": [(NOW - 600 + i * 10, 50.0) for i in range(61)]},
        ),
        "cooldown after up": (view(2, (ours,), up=NOW - 599), quiet()),
        "cooldown after down": (view(2, (ours,), down=NOW - 1), quiet()),
    }
    reasons = {}
    for name, (v, cpu) in cases.items():
        decision = decide_scale_in(v, CFG, NOW, cpu)
        assert not decision.act and decision.target is None, name
        reasons[name] = decision.reason
    assert reasons == {
        "no own server": "no server the provisioner created is in pool production",
        "at the minimum": "pool production has 1 backends, its minimum is 1",
        "no samples": "no app host reports samples",
        "a busy host": "host app-9: cpu reached 50.0% (scale-in needs under 20%)",
        "cooldown after up": "cooldown: the last scale-up was 599s ago",
        "cooldown after down": "cooldown: the last scale-in was 1s ago",
    }
    assert decide_scale_in(view(2, (ours,), up=NOW - 600, down=NOW - 600), CFG, NOW, quiet()).act


def test_scale_in_only_touches_our_own_active_servers_in_the_pool() -> None:
    other_pool = server(2, pool="staging")
    elsewhere = server(3, provider="digitalocean")
    gone_from_pool = server(4)  # registered, but someone removed its URL from the pool by hand
    v = PoolView(
        "production",
        (other_pool.url, elsewhere.url, "http://10.0.0.1:80"),
        (other_pool, elsewhere, gone_from_pool),
        ScaleMarks(),
    )
    assert decide_scale_in(v, CFG, NOW, quiet(), provider="local").target is None
    assert decide_scale_in(v, CFG, NOW, quiet(), provider="digitalocean").target == elsewhere


def test_every_server_state_is_covered_by_the_policy() -> None:
    for state in SERVER_STATES:
        decision = decide_scale_up(view(1, (server(1, state=state),)), CFG, NOW)
        assert decision.act is (state in ("active", "cleanup_failed")), state
