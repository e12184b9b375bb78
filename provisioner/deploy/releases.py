"""Release names and which releases go (pure). The role applies the same rules on the
host; these say what to expect and name a new release before it is built."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

RELEASE = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-f]{8})")
DEFAULT_KEEP = 5


def release_name(at: float, sha: str) -> str:
    """`<UTC time>-<short sha>`: names sort by time, and say what they hold."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at)) + "-" + sha[:8]


def is_release(name: str) -> bool:
    return RELEASE.fullmatch(name) is not None


def previous(names: Sequence[str], current: str) -> str | None:
    """The release a rollback goes to: the newest one older than `current`."""
    older = sorted(n for n in names if n < current)
    return older[-1] if current and older else None


def to_prune(names: Sequence[str], current: str, keep: int) -> list[str]:
    """Releases beyond the `keep` newest ones; the current one never goes (after a
    rollback it may be older than those kept)."""
    ordered = sorted(names, reverse=True)
    return sorted(n for n in ordered[keep:] if n != current)
