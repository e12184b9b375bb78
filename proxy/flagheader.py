"""`X-Feature-Flags` for one request, from the snapshot alone.

The proxy's key for a user is the `sy_bucket` cookie's number in decimal ("0"-"99"), so
a snapshot's flags give at most 100 different headers: each is worked out once, on first
use, and a request costs a tuple lookup. The form (README, "Feature flags and
OpenFeature") is a comma-separated list, sorted by name, of the flags on for this user:
a boolean flag as its name, a variant flag as name=variant; a flag that is off is absent.
"""

from __future__ import annotations

from collections.abc import Mapping

from proxy.flageval import evaluate
from state.flags import Flag

BUCKETS = 100
Pairs = tuple[tuple[str, str], ...]


class FlagTable:
    """The header entries and the (flag, variant) pairs of each bucket, for one set of flags."""

    __slots__ = ("entries", "pairs", "rules")

    def __init__(self, rules: Mapping[str, Flag]) -> None:
        self.rules = rules
        self.entries: list[tuple[str, ...] | None] = [None] * BUCKETS
        self.pairs: list[Pairs | None] = [None] * BUCKETS

    def fill(self, bucket: int) -> None:
        entries: list[str] = []
        pairs: list[tuple[str, str]] = []
        key = str(bucket)
        for name in sorted(self.rules):
            flag = self.rules[name]
            result = evaluate(name, flag, key)
            if flag.variants:
                if result.value is not None:
                    entries.append(f"{name}={result.value}")
                pairs.append((name, result.variant))
            elif result.value is True:
                entries.append(name)
        self.entries[bucket] = tuple(entries)
        self.pairs[bucket] = tuple(pairs)


class FlagTables:
    """The table of the current set of flags. One set is current per process; a resync
    hands over an equal mapping that is a new object, which keeps the worked-out table."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current = FlagTable({})

    def of(self, rules: Mapping[str, Flag], bucket: int) -> FlagTable:
        table = self.current
        if table.rules is not rules:
            if table.rules == rules:
                table.rules = rules
            else:
                table = self.current = FlagTable(rules)
        if table.entries[bucket] is None:
            table.fill(bucket)
        return table


TABLES = FlagTables()


def flag_entries(rules: Mapping[str, Flag], bucket: int) -> tuple[str, ...]:
    """The header's entries for a user in `bucket` (0-99); joined with "," by forward.py."""
    return TABLES.of(rules, bucket).entries[bucket] or () if rules else ()


def variant_pairs(rules: Mapping[str, Flag], bucket: int) -> Pairs:
    """(flag, variant) of every variant flag for a user in `bucket`, for the metrics."""
    return TABLES.of(rules, bucket).pairs[bucket] or () if rules else ()
