"""What `proxy stats` and GET /stats/versions show, pure: the two versions' windows and
the set weight in, a JSON-ready report and its text out. No I/O, no clock.

The served share is each version's part of the requests routed, with a 95% Wilson
interval; it is `within` when the weight it should get lies in that interval (the
drift flagger #1532 shows would fail it). The 5xx rate is over the answers the
upstreams gave; the error rate is the judge's: 5xx plus requests that got no answer.
"""

from __future__ import annotations

import re
import time
from typing import Any

from proxy.analysis import VersionWindow
from proxy.analysis.counts import STATUS_CLASSES, UPSTREAM_ERRORS
from proxy.analysis.exact import wilson_interval
from proxy.versionstats import VersionWindows
from state import InvalidValue

_WINDOW = re.compile(r"(\d+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str, max_s: int) -> int:
    """A window such as 300, 90s, 5m, 1h: whole seconds, 1 to `max_s`."""
    found = _WINDOW.fullmatch(text.strip().lower())
    if found is None:
        raise InvalidValue(f"window {text[:20]!r} is not valid: use seconds or a number with s, m, h (5m)")
    seconds = int(found.group(1)) * _UNIT_S[found.group(2)]
    if not 1 <= seconds <= max_s:
        raise InvalidValue(f"window {text[:20]!r} is out of range: 1 s to {max_s} s (stats_retention_s)")
    return seconds


def _rate(successes: int, trials: int) -> dict[str, Any]:
    interval = wilson_interval(successes, trials)
    return {
        "value": successes / trials if trials else None,
        "low": None if interval is None else interval[0],
        "high": None if interval is None else interval[1],
        "samples": trials,
    }


def _version(
    window: VersionWindow, release: str, total: int, expected: float, seconds: float
) -> dict[str, Any]:
    answered = sum(window.responses)
    share = _rate(window.requests, total)
    share["expected"] = expected
    share["within"] = None if share["low"] is None else share["low"] <= expected <= share["high"]
    latency = window.latency
    return {
        "release": release,
        "requests": window.requests,
        "rps": window.requests / seconds if seconds > 0 else 0.0,
        "share": share,
        "responses": dict(zip(STATUS_CLASSES, window.responses, strict=True)),
        "upstream_errors": dict(zip(UPSTREAM_ERRORS, window.upstream_errors, strict=True)),
        "5xx_rate": _rate(window.responses[4], answered),
        "error_rate": _rate(window.errors, max(window.requests, window.errors)),
        "latency_s": {
            "p50": latency.quantile(0.50),
            "p95": latency.quantile(0.95),
            "p99": latency.quantile(0.99),
            "samples": latency.count,
        },
    }


def report(
    windows: VersionWindows, *, weight: int, effective_weight: int, requested_s: int, now: float
) -> dict[str, Any]:
    """The JSON form: the span covered, the weight, and each version side by side."""
    seconds = max(min(now, windows.end) - windows.start, 0.0)
    total = windows.production.requests + windows.staging.requests
    staging_share = effective_weight / 100
    return {
        "window": {
            "start": windows.start,
            "end": windows.end,
            "seconds": seconds,
            "requested_s": requested_s,
        },
        "weight": {"set": weight, "effective": effective_weight},
        "versions": {
            "production": _version(
                windows.production, windows.production_release, total, 1 - staging_share, seconds
            ),
            "staging": _version(windows.staging, windows.staging_release, total, staging_share, seconds),
        },
    }


def _pct(rate: dict[str, Any]) -> str:
    if rate["value"] is None:
        return "-"
    return f"{rate['value']:.2%} [{rate['low']:.2%}, {rate['high']:.2%}]"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _share(v: dict[str, Any]) -> str:
    share = v["share"]
    if share["value"] is None:
        return f"- (weight {share['expected']:.0%})"
    verdict = "in" if share["within"] else "OUTSIDE"
    return f"{_pct(share)} weight {share['expected']:.0%} {verdict}"


_ROWS = (
    ("release", lambda v: v["release"][:12]),
    ("requests", lambda v: f"{v['requests']} ({v['rps']:.1f}/s)"),
    ("served share", _share),
    ("5xx rate", lambda v: f"{_pct(v['5xx_rate'])} of {v['5xx_rate']['samples']}"),
    ("error rate", lambda v: f"{_pct(v['error_rate'])} of {v['error_rate']['samples']}"),
    ("no answer", lambda v: " ".join(f"{k} {n}" for k, n in v["upstream_errors"].items())),
    ("p50/p95/p99 ms", lambda v: " / ".join(_ms(v["latency_s"][q]) for q in ("p50", "p95", "p99"))),
    ("latency samples", lambda v: str(v["latency_s"]["samples"])),
)


def render(body: dict[str, Any]) -> list[str]:
    """The text form: one row per measure, the two versions in columns."""
    window, weight = body["window"], body["weight"]
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(window["start"]))
    end = time.strftime("%H:%M:%S", time.gmtime(window["end"]))
    lines = [
        f"window {start} .. {end} UTC ({window['seconds']:.0f} s; {window['requested_s']} s asked)",
        f"weight {weight['set']}% to staging (effective {weight['effective']}%)",
        f"{'':<16} {'production':<40} staging",
    ]
    prod, stag = body["versions"]["production"], body["versions"]["staging"]
    for label, cell in _ROWS:
        lines.append(f"{label:<16} {cell(prod):<40} {cell(stag)}")
    return lines
