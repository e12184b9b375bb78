"""What `make run` clears on Ctrl-C in a shared Redis: its monitor's alert and rule
states, never an alert someone else set."""

from __future__ import annotations

import json

import redis

from devrun.leftovers import forget_monitor
from state import KeySpace


def test_the_runs_monitor_alert_and_rules_are_cleared_and_nobody_elses(redis_url: str) -> None:
    keys = KeySpace("run:")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.set(keys.alert, json.dumps({"by": "monitor:local-proxy", "reason": "cpu", "at": 1.0}))
        client.hset(keys.monitor_rules("local-proxy"), mapping={"cpu": "{}", "mem": "{}"})
        client.hset(keys.monitor_rules("web-1"), "cpu", "{}")
        lines = forget_monitor(redis_url, "run:", "local-proxy")
        assert lines == [
            "cleared the alert key the run's monitor had set",
            "forgot the run's monitor rule states (cpu, mem)",
        ]
        assert client.get(keys.alert) is None and client.hgetall(keys.monitor_rules("local-proxy")) == {}
        assert client.hgetall(keys.monitor_rules("web-1")) == {"cpu": "{}"}
        # An operator's alert stays: the run did not set it.
        human = json.dumps({"by": "ops", "reason": "maintenance", "at": 2.0})
        client.set(keys.alert, human)
        assert forget_monitor(redis_url, "run:", "local-proxy") == []
        assert client.get(keys.alert) == human
    finally:
        client.close()
