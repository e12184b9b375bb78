"""What the page is sent, pure: weights, versions, pools, flags, deploys, previews."""

from __future__ import annotations

from proxy.analysis import VersionWindow
from proxy.dashboard.series import Hour
from proxy.dashboard.view import Live, Slow, page_state, set_weights
from proxy.versionstats import to_flat
from state import Alert, DeployRecord, ServerRecord, Snapshot, StatsSpan
from state.flags import Flag

PROD, STAG = "http://127.0.0.1:9001", "http://127.0.0.1:9002"
SNAP = Snapshot(version=7, production=(PROD,), staging=(STAG,), weight=25)
NOW = 10_000.0
BUCKET_S = 10


def hour(buckets: dict[int, dict[tuple[str, str], VersionWindow]] | None = None) -> Hour:
    """An hour holding these buckets' counts, as a read from Redis would leave it."""
    made = Hour(BUCKET_S)
    flat = {b: {label: to_flat(w) for label, w in counts.items()} for b, counts in (buckets or {}).items()}
    made.update(StatsSpan(int(NOW) - 3600, int(NOW) + BUCKET_S, BUCKET_S, flat), NOW)  # type: ignore[arg-type]
    return made


def answered(requests: int, errors: int = 0) -> VersionWindow:
    return VersionWindow(requests, (0, requests - errors, 0, 0, errors))


def live(snap: Snapshot = SNAP, **kw: object) -> Live:
    values: dict[str, object] = {"stale": False, "state_error": None, "ejected": {}, "inflight": {}}
    values.update(kw)
    return Live(snap, **values)  # type: ignore[arg-type]


def test_the_set_weights_follow_the_kill_switch_and_an_empty_staging_pool() -> None:
    assert set_weights(SNAP) == {"production": 75, "staging": 25}
    killed = Snapshot(production=(PROD,), staging=(STAG,), weight=25, alert=Alert("monitor", "cpu", 1.0))
    assert set_weights(killed) == {"production": 100, "staging": 0}
    assert set_weights(Snapshot(production=(PROD,), weight=25)) == {"production": 100, "staging": 0}


def test_versions_show_the_release_counted_its_age_and_the_last_minute_of_every_proxy() -> None:
    deploys = {
        "staging": [
            DeployRecord("staging", "deploy", "bad0", "failed", "git push", NOW - 60),
            DeployRecord("staging", "deploy", "9be41d07aa52", "succeeded", "git push", NOW - 600),
        ],
        "production": [DeployRecord("production", "deploy", "4f2a9c", "succeeded", "git push", NOW - 7200)],
    }
    # The last minute: 60 s back to 9940 (whole buckets), to now in the bucket of 10000.
    counts = hour(
        {
            9930: {("staging", "9be41d07aa52"): answered(1000, 1000)},  # before the minute
            9950: {("staging", "9be41d07aa52"): answered(25, 5), ("production", "unknown"): answered(50)},
            10_000: {("production", "unknown"): answered(25)},
        }
    )
    state = page_state(live(), Slow(deploys=deploys), counts, NOW)
    production, staging = state["versions"]
    assert staging["sha"] == "9be41d07aa52" and staging["age_s"] == 600.0
    # Counted before the proxy knew the release: the last good deploy's sha is shown.
    assert production["sha"] == "4f2a9c" and production["age_s"] == 7200.0
    assert (staging["weight"], staging["share"]) == (25, 0.25)
    low, high = staging["share_interval"]
    assert low < 0.25 < high
    # Req/s is the rate now: the last 20 s (two buckets), whichever release served.
    assert (staging["rps"], production["rps"]) == (0.0, 25 / 20)
    assert (staging["error_rate"], staging["answered"]) == (0.2, 25)
    assert state["bucket_s"] == BUCKET_S
    assert [d["sha"] for d in state["deploys"]] == ["bad0", "9be41d07aa52", "4f2a9c"]


def test_an_idle_version_shows_no_rates_and_its_deploy() -> None:
    state = page_state(live(), Slow(), hour(), NOW)
    production, staging = state["versions"]
    assert production["sha"] is None and production["age_s"] is None
    assert (staging["share"], staging["share_interval"], staging["rps"], staging["error_rate"]) == (
        None,
        None,
        0.0,
        None,
    )


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
        hour(),
        NOW,
    )
    (prod,) = state["pools"]["production"]
    (stag,) = state["pools"]["staging"]
    assert (prod["ejected_s"], prod["inflight"], prod["server"]) == (None, 3, None)
    assert (stag["ejected_s"], stag["inflight"], stag["server"], stag["release"]) == (12.5, 0, "app-1", "r42")
    assert state["servers"][0]["id"] == "app-1"


def test_flags_are_listed_by_name_with_their_rule_and_routes() -> None:
    snap = Snapshot(flag_rules={"zeta": Flag(on=True, percent=10), "alpha": Flag(on=True)})
    flags = page_state(live(snap), Slow(), hour(), NOW)["flags"]
    assert [f["name"] for f in flags] == ["alpha", "disableSET", "zeta"]
    assert flags[1] == {"name": "disableSET", "on": False, "kind": "boolean", "routes": ["/set"]}
    assert flags[2]["kind"] == "percent" and flags[2]["percent"] == 10


def test_previews_are_sent_only_once_the_state_has_them() -> None:
    assert "previews" not in page_state(live(), Slow(), hour(), NOW)
    previews = [{"name": "pr-12", "url": "http://pr-12.preview.example", "sha": "abc"}]
    assert page_state(live(), Slow(previews=previews), hour(), NOW)["previews"] == previews
