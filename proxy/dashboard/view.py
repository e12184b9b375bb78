"""What the page shows, as one JSON document: pure, from values the feed gathered.
No I/O and no clock: `now` is passed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy.dashboard.counters import VERSIONS
from proxy.dashboard.series import Hour
from proxy.statsreport import report
from proxy.versionstats import VersionWindows, latest_release, window_of
from state import UNKNOWN_RELEASE, DeployRecord, HostSample, ServerRecord, Snapshot

# The versions' served share and 5xx rate are over the last minute of buckets; req/s over
# the last 10 s (two buckets at least), to be the rate now.
RECENT_S = 60
RATE_S = 10


@dataclass(frozen=True, slots=True)
class HostView:
    host: str
    sample: HostSample | None  # None: no live sample (its monitor stopped)
    rules: Mapping[str, Mapping[str, object]]


@dataclass(frozen=True, slots=True)
class Slow:
    """What the feed reads from Redis every few seconds, while someone watches."""

    servers: Sequence[ServerRecord] = ()
    hosts: Sequence[HostView] = ()
    deploys: Mapping[str, Sequence[DeployRecord]] = field(default_factory=dict)
    previews: Sequence[Mapping[str, object]] | None = None  # once previews exist (issue 14)
    error: str | None = None
    read_at: float | None = None


@dataclass(frozen=True, slots=True)
class Live:
    """What the proxy knows in memory: its snapshot, ejections, requests in flight."""

    snapshot: Snapshot
    stale: bool
    state_error: str | None
    ejected: Mapping[str, float]  # backend -> seconds of ejection left
    inflight: Mapping[str, int]


def set_weights(snap: Snapshot) -> dict[str, int]:
    """The percent of users each version is set to get; the kill switch sends all to production."""
    staging = 0 if snap.alert is not None or not snap.staging else snap.weight
    return {"production": 100 - staging, "staging": staging}


def _last_good(deploys: Sequence[DeployRecord]) -> DeployRecord | None:
    return next((d for d in deploys if d.result == "succeeded" and d.sha), None)


def recent_windows(hour: Hour, now: float) -> VersionWindows:
    """The last minute, as `proxy stats --window 60` reads it: per version, the release
    it served last and that release's counts only."""
    span = hour.span(now - RECENT_S, now)
    chosen = {pool: latest_release(span, pool) or UNKNOWN_RELEASE for pool in VERSIONS}
    return VersionWindows(
        production=window_of(span, "production", chosen["production"]),
        staging=window_of(span, "staging", chosen["staging"]),
        production_release=chosen["production"],
        staging_release=chosen["staging"],
        start=float(span.start),
        end=float(span.end),
    )


def _release(counted: str, deploys: Sequence[DeployRecord]) -> tuple[str | None, DeployRecord | None]:
    """The sha to show and its deploy: the one counted, else (idle, or counted before the
    proxy knew it) the last good deploy's."""
    if counted != UNKNOWN_RELEASE:
        return counted, next((d for d in deploys if d.result == "succeeded" and d.sha == counted), None)
    good = _last_good(deploys)
    return (good.sha if good else None), good


def versions(live: Live, slow: Slow, hour: Hour, now: float) -> list[dict[str, Any]]:
    weights = set_weights(live.snapshot)
    body = report(
        recent_windows(hour, now),
        weight=live.snapshot.weight,
        effective_weight=weights["staging"],
        requested_s=RECENT_S,
        now=now,
    )
    out = []
    for name in VERSIONS:
        stats = body["versions"][name]
        sha, deploy = _release(stats["release"], slow.deploys.get(name, ()))
        share, fivexx = stats["share"], stats["5xx_rate"]
        out.append(
            {
                "name": name,
                "sha": sha,
                "deployed_at": deploy.at if deploy else None,
                "age_s": round(now - deploy.at, 1) if deploy else None,
                "weight": weights[name],
                "share": share["value"],
                "share_interval": None if share["low"] is None else [share["low"], share["high"]],
                "rps": round(hour.rate(name, now, max(RATE_S, 2 * hour.bucket_s)), 3),
                "error_rate": fivexx["value"],
                "answered": fivexx["samples"],
                "backends": len(live.snapshot.pool(name)),
            }
        )
    return out


def _host_of(url: str) -> str:
    return urlsplit(url).hostname or url


def pools(live: Live, slow: Slow) -> dict[str, list[dict[str, Any]]]:
    by_url = {s.url: s for s in slow.servers if s.url}
    out: dict[str, list[dict[str, Any]]] = {}
    for name in VERSIONS:
        release = _last_good(slow.deploys.get(name, ()))
        releases = dict(release.releases) if release else {}
        rows = []
        for url in live.snapshot.pool(name):
            server = by_url.get(url)
            host = _host_of(url)
            rows.append(
                {
                    "url": url,
                    "ejected_s": live.ejected.get(url),
                    "inflight": live.inflight.get(url, 0),
                    "server": server.id if server else None,
                    "release": releases.get(server.id if server else host) or releases.get(host),
                    "sha": release.sha if release else None,
                }
            )
        out[name] = rows
    return out


def _host(view: HostView, now: float) -> dict[str, Any]:
    sample = view.sample
    return {
        "host": view.host,
        "role": sample.role if sample else None,
        "cpu_percent": sample.cpu_percent if sample else None,
        "mem_percent": sample.mem_percent if sample else None,
        "age_s": round(max(now - sample.at, 0.0), 1) if sample else None,
        "rules": {name: dict(state) for name, state in sorted(view.rules.items())},
    }


def _deploy(d: DeployRecord) -> dict[str, Any]:
    return {
        "env": d.env,
        "action": d.action,
        "sha": d.sha,
        "result": d.result,
        "by": d.by,
        "at": d.at,
        "seconds": d.seconds,
        "failed_host": d.failed_host,
        "error": d.error[:300],
    }


def flags(snap: Snapshot) -> list[dict[str, Any]]:
    """Every flag with a rule or a route, by name; a flag with routes only is off."""
    out = []
    for name in sorted(set(snap.flag_rules) | set(snap.flag_routes)):
        rule = snap.flag_rules.get(name)
        body = rule.to_json() if rule is not None else {"on": False, "kind": "boolean"}
        out.append({"name": name, **body, "routes": list(snap.flag_routes.get(name, ()))})
    return out


def page_state(live: Live, slow: Slow, hour: Hour, now: float) -> dict[str, Any]:
    snap = live.snapshot
    body = snap.to_json()
    deploys = sorted((d for ds in slow.deploys.values() for d in ds), key=lambda d: d.at, reverse=True)
    state: dict[str, Any] = {
        "at": now,
        "state": {"version": snap.version, "stale": live.stale, "error": live.state_error},
        "weight": snap.weight,
        "alert": body["alert"],
        "versions": versions(live, slow, hour, now),
        "bucket_s": hour.bucket_s,
        "flags": flags(snap),
        "pools": pools(live, slow),
        "servers": [s.to_json() for s in slow.servers],
        "hosts": [_host(h, now) for h in slow.hosts],
        "deploys": [_deploy(d) for d in deploys[:20]],
        "slow_error": slow.error,
        "slow_at": slow.read_at,
    }
    if slow.previews is not None:
        state["previews"] = [dict(p) for p in slow.previews]
    return state
