"""`rollout_on_deploy`: a successful deploy of staging starts a rollout of its sha.

The provisioner records every deploy through state/ (`deploy:history:staging`); the
leading proxy reads the newest one and decides here, purely, whether it asks for a
rollout. A deploy older than the last rollout's start, or than `max_age_s` (a proxy
that starts long after a deploy), starts nothing; nor does one while a rollout runs.
"""

from __future__ import annotations

from proxy.rollout.model import Rollout
from state import DeployRecord

MAX_AGE_S = 600.0


def should_start(
    latest: DeployRecord | None, current: Rollout | None, now: float, max_age_s: float = MAX_AGE_S
) -> bool:
    if latest is None or latest.action != "deploy" or latest.result != "succeeded" or not latest.sha:
        return False
    if now - latest.at > max_age_s:
        return False
    if current is None:
        return True
    return not current.active and latest.at > current.started_at
