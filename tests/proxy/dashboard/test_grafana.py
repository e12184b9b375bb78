"""The Grafana dashboard in docs/grafana names only metrics a real proxy exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ROOT
from tests.support.dashboard import Dashboard

pytestmark = pytest.mark.slow

GRAFANA = ROOT / "docs" / "grafana" / "switchyard.json"
METRIC = re.compile(r"\b(switchyard_[A-Za-z0-9_:]*)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def queries(node: object) -> Iterator[str]:
    """Every PromQL string in the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        if node.get("type") == "datasource":
            return  # a data source picker: its query is a plugin type, not PromQL
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def exported(text: str) -> set[str]:
    """The series names a scrape can show, from each family and its type (a family with
    no sample yet, such as no backend ejected, still names its series)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


async def test_every_expression_names_a_metric_the_proxy_exports(dashboard: Dashboard) -> None:
    for _ in range(5):
        assert await dashboard.served_by() == "staging"
    async with dashboard.session.get(dashboard.url + "metrics") as r:
        assert r.status == 200
        names = exported(await r.text())
    assert "switchyard_requests_total" in names and "switchyard_upstream_latency_seconds_bucket" in names
    board = json.loads(GRAFANA.read_text())
    exprs = list(queries(board))
    assert len(exprs) >= 10
    for panel in board["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used, f"{expr!r} names no switchyard metric"
        assert used <= names, f"{expr!r} names {sorted(used - names)}, which the proxy does not export"
