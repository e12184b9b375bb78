"""What the page is sent, pure: weights, versions, pools, flags, deploys, previews."""

from __future__ import annotations

from proxy.dashboard.series import Counters, History
from proxy.dashboard.view import Live, Slow, page_state, set_weights
from state import Alert, DeployRecord, ServerRecord, Snapshot
from state.flags import Flag

PROD, STAG = "http://127.0.0.1:9001", "http://127.0.0.1:9002"
SNAP = Snapshot(version=7, production=(PROD,), staging=(STAG,), weight=25)
NOW = 10_000.0


def live(snap: Snapshot = SNAP, **kw: object) -> Live:
    values: dict[str, object] = {"stale": False, "state_error": None, "ejected": {}, "inflight": {}}
    values.update(kw)
    return Live(snap, **values)  # type: ignore[arg-type]


def test_the_set_weights_follow_the_kill_switch_and_an_empty_staging_pool() -> None:
    assert set_weights(SNAP) == {"production": 75, "staging": 25}
    killed = Snapshot(production=(PROD,), staging=(STAG,), weight=25, alert=Alert("monitor", "cpu", 1.0))
    assert set_weights(killed) == {"production": 100, "staging": 0}
    assert set_weights(Snapshot(production=(PROD,), weight=25)) == {"production": 100, "staging": 0}


def test_versions_show_the_last_good_release_its_age_and_what_was_served() -> None:
    deploys = {
        "staging": [
            DeployRecord("staging", "deploy", "bad0", "failed", "git push", NOW - 60),
            DeployRecord("staging", "deploy", "9be41d07aa52", "succeeded", "git push", NOW - 600),
        ]
    }
    history = History(step_s=5.0)
    history.add(
        NOW - 5, {"production": Counters(0, 0, (1.0,), (0, 0)), "staging": Counters(0, 0, (1.0,), (0, 0))}
    )
    history.add(
        NOW, {"production": Counters(75, 0, (1.0,), (75, 0)), "staging": Counters(25, 5, (1.0,), (25, 0))}
    )
    state = page_state(live(), Slow(deploys=deploys), history, NOW)
    production, staging = state["versions"]
    assert staging["sha"] == "9be41d07aa52" and staging["age_s"] == 600.0
    assert production["sha"] is None and production["age_s"] is None
    assert (staging["weight"], staging["share"]) == (25, 0.25)
    assert staging["rps"] == 5.0 and staging["error_rate"] == 0.2
    assert [d["sha"] for d in state["deploys"]] == ["bad0", "9be41d07aa52"]


def test_pools_show_ejection_requests_in_flight_the_server_and_its_release() -> None:
    server = ServerRecord("app-1", "staging", "local", "active", 1.0, 1.0, "w", url=STAG)
    deploys = {
        "staging": [
            DeployRecord("staging", "deploy", "abc", "succeeded", "x", 1.0, releases={"app-1": "r42"})
        ]
    }
    state = page_state(
        live(ejected={STAG: 12.5}, inflight={PROD: 3}),
        Slow(servers=[server], deploys=deploys),
        History(),
        NOW,
    )
    (prod,) = state["pools"]["production"]
    (stag,) = state["pools"]["staging"]
    assert (prod["ejected_s"], prod["inflight"], prod["server"]) == (None, 3, None)
    assert (stag["ejected_s"], stag["inflight"], stag["server"], stag["release"]) == (12.5, 0, "app-1", "r42")
    assert state["servers"][0]["id"] == "app-1"


def test_flags_are_listed_by_name_with_their_rule_and_routes() -> None:
    snap = Snapshot(flag_rules={"zeta": Flag(on=True, percent=10), "alpha": Flag(on=True)})
    flags = page_state(live(snap), Slow(), History(), NOW)["flags"]
    assert [f["name"] for f in flags] == ["alpha", "disableSET", "zeta"]
    assert flags[1] == {"name": "disableSET", "on": False, "kind": "boolean", "routes": ["/set"]}
    assert flags[2]["kind"] == "percent" and flags[2]["percent"] == 10


def test_previews_are_sent_only_once_the_state_has_them() -> None:
    assert "previews" not in page_state(live(), Slow(), History(), NOW)
    previews = [{"name": "pr-12", "url": "http://pr-12.preview.example", "sha": "abc"}]
    assert page_state(live(), Slow(previews=previews), History(), NOW)["previews"] == previews
