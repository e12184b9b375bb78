"""What a flag says for one user: a pure function of the flag, its name and a key
(no I/O, no clock, no Redis).

A key's point in [0, 10000) is sha256(name + ":" + key): a flag at p% is on for the
points below p * 100, so raising p only adds users, and hashing with the name makes two
flags at 10% different 10%s. Variants take consecutive ranges of their own point
(sha256(name + ":variant:" + key)) in the order they were given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from state.flags import Flag

HASH_SPACE = 10_000
Reason = Literal["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED"]


class TargetingKeyMissing(ValueError):
    """The flag splits users, and no key says which user this is."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    # None: the flag is off and has no value of its own; the caller's default applies.
    value: bool | str | None
    variant: str
    reason: Reason


ON = Evaluation(True, "on", "STATIC")
OFF = Evaluation(False, "off", "STATIC")
SPLIT_ON = Evaluation(True, "on", "SPLIT")
SPLIT_OFF = Evaluation(False, "off", "SPLIT")
DISABLED = Evaluation(False, "off", "DISABLED")
DISABLED_VARIANTS = Evaluation(None, "off", "DISABLED")


def point(name: str, key: str, *, salt: str = "") -> int:
    """The key's stable place in [0, HASH_SPACE) for one flag."""
    digest = hashlib.sha256(f"{name}:{salt}{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % HASH_SPACE


def evaluate(name: str, flag: Flag, key: str | None) -> Evaluation:
    """The flag's value for `key` (None or "": no key). Raises TargetingKeyMissing
    only when the answer depends on who asks."""
    if not flag.on:
        return DISABLED_VARIANTS if flag.variants else DISABLED
    if flag.variants:
        if not key:
            raise TargetingKeyMissing(f"flag {name!r} splits users into variants: send a targeting key")
        at = point(name, key, salt="variant:")
        upper = 0
        for variant, weight in flag.variants:
            upper += weight * (HASH_SPACE // 100)
            if at < upper:
                return Evaluation(variant, variant, "SPLIT")
        raise AssertionError(f"variant weights of {name!r} do not cover the hash space")
    percent = flag.percent
    if percent is None or percent == 100:
        return ON
    if percent == 0:
        return OFF
    if not key:
        raise TargetingKeyMissing(f"flag {name!r} is on for {percent}% of users: send a targeting key")
    return SPLIT_ON if point(name, key) < percent * (HASH_SPACE // 100) else SPLIT_OFF
