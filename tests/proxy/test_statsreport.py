"""The `proxy stats` report, pure: windows and weight in, numbers and text out."""

from __future__ import annotations

import pytest

from proxy.analysis import Histogram, VersionWindow
from proxy.statsreport import parse_window, render, report
from proxy.versionstats import VersionWindows
from state import InvalidValue


@pytest.mark.parametrize(
    ("text", "seconds"), [("300", 300), ("90s", 90), ("5m", 300), ("1h", 3600), (" 2M ", 120), ("1d", 86400)]
)
def test_windows_parse(text: str, seconds: int) -> None:
    assert parse_window(text, 86400) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-5m", "1.5m", "0", "2d", "5 m"])
def test_bad_windows_say_what_to_use(text: str) -> None:
    with pytest.raises(InvalidValue, match="window"):
        parse_window(text, 86400)


def windows(production: VersionWindow, staging: VersionWindow) -> VersionWindows:
    return VersionWindows(production, staging, "a" * 40, "unknown", 1000.0, 1300.0)


def test_the_report_puts_each_measure_beside_the_weight() -> None:
    staging = VersionWindow(300, (0, 290, 0, 0, 8), (1, 1, 0), Histogram.of([0.010] * 150 + [0.100] * 148))
    production = VersionWindow(700, (0, 700, 0, 0, 0), (0, 0, 0), Histogram.of([0.010] * 700))

    body = report(windows(production, staging), weight=30, effective_weight=30, requested_s=300, now=1250.0)

    assert body["window"] == {"start": 1000.0, "end": 1300.0, "seconds": 250.0, "requested_s": 300}
    s, p = body["versions"]["staging"], body["versions"]["production"]
    assert (s["requests"], s["rps"]) == (300, 1.2)
    assert s["share"]["value"] == 0.3 and s["share"]["expected"] == 0.3 and s["share"]["within"] is True
    assert s["share"]["low"] < 0.3 < s["share"]["high"]
    assert p["share"]["expected"] == 0.7 and p["release"] == "a" * 40
    assert s["5xx_rate"]["value"] == pytest.approx(8 / 298) and s["5xx_rate"]["samples"] == 298
    assert s["error_rate"]["value"] == pytest.approx(10 / 300)
    assert s["upstream_errors"] == {"connect": 1, "reset": 1, "timeout": 0}
    assert s["latency_s"]["samples"] == 298
    assert s["latency_s"]["p50"] < 0.012 and 0.08 < s["latency_s"]["p99"] < 0.125
    assert p["5xx_rate"]["low"] == 0.0 and p["5xx_rate"]["high"] > 0


def test_a_share_that_drifted_from_the_weight_is_outside() -> None:
    # 40% served where 30% is set, over 2,000 requests: far outside the +-2 points.
    body = report(
        windows(VersionWindow(1200), VersionWindow(800)),
        weight=30,
        effective_weight=30,
        requested_s=60,
        now=2000,
    )
    assert body["versions"]["staging"]["share"]["within"] is False
    assert "OUTSIDE" in "\n".join(render(body))


def test_no_traffic_is_shown_as_nothing_rather_than_zero() -> None:
    body = report(
        windows(VersionWindow(), VersionWindow()), weight=0, effective_weight=0, requested_s=60, now=0
    )
    s = body["versions"]["staging"]
    assert s["share"]["value"] is None and s["share"]["within"] is None
    assert s["5xx_rate"]["value"] is None and s["latency_s"]["p99"] is None
    lines = render(body)
    assert lines[1] == "weight 0% to staging (effective 0%)"
    assert any(line.startswith("p50/p95/p99 ms") and "- / - / -" in line for line in lines)
