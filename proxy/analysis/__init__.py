"""Canary analysis, pure: per-version counts, the latency histogram, the judge.

No I/O, no clock, nothing of ours but these modules (an import-linter contract
holds it to that), so every rule is tested with plain values.
"""

from __future__ import annotations

from proxy.analysis.counts import VersionCounter, VersionWindow
from proxy.analysis.histogram import Histogram
from proxy.analysis.judge import JudgePolicy, judge
from proxy.analysis.verdict import MetricVerdict, Outcome, Verdict

__all__ = [
    "Histogram",
    "JudgePolicy",
    "MetricVerdict",
    "Outcome",
    "Verdict",
    "VersionCounter",
    "VersionWindow",
    "judge",
]
