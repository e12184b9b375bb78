"""What the run's monitor leaves in a shared Redis, cleared when the run stops.

The monitor is stopped in the middle of whatever it was doing: a rule firing leaves the
alert key set (every request on production, in a Redis others use) and its rule states
say "firing", so the next run would carry on from them. The alert is cleared only if
the run's monitor is still who set it: an operator's alert stays.
"""

from __future__ import annotations

import asyncio

from state import KeySpace, MonitorStore, StateError, StateStore, connect


def forget_monitor(url: str, key_prefix: str, host: str) -> list[str]:
    """Clear the alert and the rule states of the monitor named `host`: one line per thing done."""
    return asyncio.run(_forget(url, key_prefix, host))


async def _forget(url: str, key_prefix: str, host: str) -> list[str]:
    client = connect(url)
    keys = KeySpace(key_prefix)
    actor = f"monitor:{host}"
    lines: list[str] = []
    try:
        change = await StateStore(client, keys, actor="devrun").clear_alert(only_if_by=actor)
        if change.changed:
            lines.append("cleared the alert key the run's monitor had set")
        monitor = MonitorStore(client, keys, host=host, actor="devrun")
        names = sorted(await monitor.rule_states())
        await monitor.forget_rules(names)
        if names:
            lines.append(f"forgot the run's monitor rule states ({', '.join(names)})")
    except StateError as exc:
        lines.append(f"warning: could not clear what the run's monitor set: {exc}")
    finally:
        await client.aclose()
    return lines
