"""Request counters kept as plain integers on the data path and exported to
Prometheus by a collector at scrape time, so a request costs no lock."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from proxy.outlier import Outliers
from proxy.retry import RetryBudget

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Stats:
    def __init__(self, outliers: Outliers | None = None, retry_budget: RetryBudget | None = None) -> None:
        self.outliers = outliers
        self.retry_budget = retry_budget
        # version -> answers by status // 100 (index 0 for anything out of range);
        # version "proxy" for answers the proxy gave itself
        self.by_class: dict[str, list[int]] = {}
        self.latency_counts: dict[str, list[int]] = {}
        self.latency_sums: defaultdict[str, float] = defaultdict(float)
        # ((flag, variant), ...) of a bucket -> answers by status class: one lookup per
        # request, spread out to flag and variant only when scraped.
        self.flag_counts: dict[tuple[tuple[str, str], ...], list[int]] = {}

    def count(self, version: str, status: int) -> None:
        counts = self.by_class.get(version)
        if counts is None:
            counts = self.by_class[version] = [0] * 6
        klass = status // 100
        counts[klass if klass < 6 else 0] += 1

    def count_flags(self, pairs: tuple[tuple[str, str], ...], status: int) -> None:
        if not pairs:
            return
        counts = self.flag_counts.get(pairs)
        if counts is None:
            counts = self.flag_counts[pairs] = [0] * 6
        klass = status // 100
        counts[klass if klass < 6 else 0] += 1

    def by_variant(self) -> dict[tuple[str, str, str], int]:
        """(flag, variant, status class) -> answers, for the metrics."""
        out: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        for pairs, counts in self.flag_counts.items():
            for klass, n in enumerate(counts):
                if n:
                    for flag, variant in pairs:
                        out[flag, variant, _CLASSES.get(klass, "other")] += n
        return dict(out)

    @property
    def requests(self) -> dict[tuple[str, str], int]:
        """(version, status class) -> answers, for reports."""
        return {
            (version, _CLASSES.get(klass, "other")): n
            for version, counts in self.by_class.items()
            for klass, n in enumerate(counts)
            if n
        }

    def observe_latency(self, version: str, seconds: float) -> None:
        counts = self.latency_counts.get(version)
        if counts is None:
            counts = self.latency_counts[version] = [0] * (len(LATENCY_BUCKETS_S) + 1)
        counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sums[version] += seconds

    def by_version(self) -> dict[str, int]:
        return {version: sum(counts) for version, counts in self.by_class.items()}


_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class StatsCollector(Collector):
    def __init__(
        self,
        stats: Stats,
        *,
        state_age_s: Callable[[], float],
        state_stale: Callable[[], bool],
        state_version: Callable[[], int],
        state_lost: Callable[[], bool] = lambda: False,
        state_restores: Callable[[], int] = lambda: 0,
    ) -> None:
        self.stats = stats
        self.state_age_s = state_age_s
        self.state_stale = state_stale
        self.state_version = state_version
        self.state_lost = state_lost
        self.state_restores = state_restores

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily(
            "switchyard_requests",
            "Requests answered, by version and status class",
            labels=["version", "status_class"],
        )
        for (version, klass), n in sorted(self.stats.requests.items()):
            requests.add_metric([version, klass], n)
        yield requests

        variants = CounterMetricFamily(
            "switchyard_flag_variant_requests",
            "Requests answered, by variant flag, the user's variant and status class",
            labels=["flag", "variant", "status_class"],
        )
        for (flag, variant, klass), n in sorted(self.stats.by_variant().items()):
            variants.add_metric([flag, variant, klass], n)
        yield variants

        latency = HistogramMetricFamily(
            "switchyard_upstream_latency_seconds",
            "Time from sending a request upstream to its response head",
            labels=["version"],
        )
        for version, counts in sorted(self.stats.latency_counts.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric([version], buckets, self.stats.latency_sums[version])
        yield latency

        budget, outliers = self.stats.retry_budget, self.stats.outliers
        if budget is not None:
            yield CounterMetricFamily(
                "switchyard_retries",
                "Requests retried on another backend after a failure before any response byte",
                value=budget.retries,
            )
        if outliers is not None:
            yield CounterMetricFamily(
                "switchyard_ejections",
                "Backends ejected after consecutive failures",
                value=outliers.total_ejections,
            )
            ejected = GaugeMetricFamily(
                "switchyard_backend_ejected", "1 while a backend is ejected from its pool", labels=["backend"]
            )
            for backend in sorted(outliers.ejected):
                ejected.add_metric([backend], 1.0)
            yield ejected
        yield GaugeMetricFamily(
            "switchyard_state_age_seconds",
            "Seconds since the routing state was last confirmed from Redis",
            value=self.state_age_s(),
        )
        yield GaugeMetricFamily(
            "switchyard_state_stale",
            "1 while Redis is unreachable and routing runs on the last snapshot",
            value=1.0 if self.state_stale() else 0.0,
        )
        yield GaugeMetricFamily(
            "switchyard_state_version",
            "Version of the routing snapshot in use",
            value=self.state_version(),
        )
        yield GaugeMetricFamily(
            "switchyard_state_lost",
            "1 while Redis has lost the routing state and routing runs on the last snapshot",
            value=1.0 if self.state_lost() else 0.0,
        )
        yield CounterMetricFamily(
            "switchyard_state_restores",
            "Times this proxy wrote its snapshot back after Redis lost the routing state",
            value=self.state_restores(),
        )
