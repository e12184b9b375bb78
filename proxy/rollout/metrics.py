"""The rollout's Prometheus metrics, read from the controller's last look at the record."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from proxy.rollout.model import Rollout

VERDICT_VALUE = {"PASS": 1.0, "INCONCLUSIVE": 0.0, "FAIL": -1.0}


class RolloutCollector(Collector):
    def __init__(self, current: Callable[[], Rollout | None], leading: Callable[[], bool]) -> None:
        self.current = current
        self.leading = leading

    def collect(self) -> Iterator[GaugeMetricFamily]:
        r = self.current()
        active = r is not None and r.active
        yield GaugeMetricFamily(
            "switchyard_rollout_step",
            "Step of the running rollout, from 1 (0 when none runs)",
            value=r.step + 1 if r is not None and active else 0,
        )
        yield GaugeMetricFamily(
            "switchyard_rollout_weight",
            "Percent of traffic the last rollout set for staging",
            value=r.target if r is not None else 0,
        )
        verdicts = GaugeMetricFamily(
            "switchyard_rollout_verdict",
            "The last verdict, per metric and overall: 1 PASS, 0 INCONCLUSIVE, -1 FAIL",
            labels=["metric"],
        )
        last = r.last if r is not None else None
        if last is not None:
            verdicts.add_metric(["overall"], VERDICT_VALUE.get(last.outcome, 0.0))
            metrics = last.verdict.get("metrics", [])
            for m in metrics if isinstance(metrics, list) else []:
                verdicts.add_metric([str(m.get("metric"))], VERDICT_VALUE.get(str(m.get("outcome")), 0.0))
        yield verdicts
        yield GaugeMetricFamily(
            "switchyard_rollout_leader",
            "1 while this proxy leads rollouts",
            value=1.0 if self.leading() else 0.0,
        )
