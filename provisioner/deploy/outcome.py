"""How a deploy ended, for people: the Ansible task that failed, the notification's fields."""

from __future__ import annotations

import re

from provisioner.errors import ConfigureError
from state import DeployRecord

_TASK = re.compile(r"at task (['\"])(.+?)\1")


def failed_task(error: ConfigureError) -> str:
    found = _TASK.search(str(error))
    return found.group(2) if found else "?"


def summary(record: DeployRecord) -> dict[str, object]:
    found: dict[str, object] = {
        "env": record.env,
        "sha": record.sha,
        "seconds": round(record.seconds, 2),
        "releases": dict(record.releases),
    }
    if record.result == "failed":
        found.update(failed_host=record.failed_host, failed_task=record.failed_task, error=record.error[:500])
    return found
