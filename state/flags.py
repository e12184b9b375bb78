"""Feature flags as stored: a switch, optionally on for a percentage of users or split
into weighted string variants (no I/O).

A flag's value in the `flags` hash is "1" or "0" for a plain on/off flag (the original
form, still read and written as such) or a JSON object for a rule:
`{"on": true, "percent": 10}` or `{"on": true, "variants": {"a": 50, "b": 50}}`.
`on` is the switch: a rule that is off keeps its percentage or its variants.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from state.errors import InvalidValue

_VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_VARIANTS = 32
# What a stored flag looks like in the audit log: a bool, or the rule's JSON object.
Stored = bool | dict[str, object]


@dataclass(frozen=True, slots=True)
class Flag:
    """One flag. `percent` None and no `variants`: a plain on/off flag."""

    on: bool
    percent: int | None = None
    variants: tuple[tuple[str, int], ...] = ()

    @property
    def kind(self) -> str:
        if self.variants:
            return "variants"
        return "boolean" if self.percent is None else "percent"

    @property
    def on_for_everyone(self) -> bool:
        """What the original boolean view (`Snapshot.flags`, route blocking) sees."""
        return self.on and not self.variants and (self.percent is None or self.percent == 100)

    def stored(self) -> Stored:
        if self.variants:
            return {"on": self.on, "variants": dict(self.variants)}
        if self.percent is not None:
            return {"on": self.on, "percent": self.percent}
        return self.on

    def encode(self) -> str:
        stored = self.stored()
        if isinstance(stored, bool):
            return "1" if stored else "0"
        return json.dumps(stored, separators=(",", ":"))

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"on": self.on, "kind": self.kind}
        if self.percent is not None:
            body["percent"] = self.percent
        if self.variants:
            body["variants"] = dict(self.variants)
        return body


def parse_percent(value: object) -> int:
    """A flag's share of users: a whole percent 0-100 (a string of digits is accepted)."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,6}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidValue(f"percentage {value!r} is out of range: use a whole percent 0-100")
    return value


def parse_variants(value: object) -> tuple[tuple[str, int], ...]:
    """Weighted variants, `a=50,b=50` or {"a": 50, "b": 50}: weights are whole percents
    adding up to 100, kept in the order given (the order places them in the hash space)."""
    if isinstance(value, str):
        pairs: list[tuple[object, object]] = []
        for item in value.split(","):
            name, sep, weight = item.strip().partition("=")
            if not sep:
                raise InvalidValue(f"variant {item.strip()!r} has no weight: use name=weight, e.g. a=50,b=50")
            pairs.append((name.strip(), weight.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise InvalidValue(f"variants {value!r} are not valid: use a=50,b=50 or {{'a': 50, 'b': 50}}")
    out = [(_variant_name(name), _variant_weight(name, weight)) for name, weight in pairs]
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise InvalidValue(f"variants {names} name one variant twice: give each a single weight")
    if not 2 <= len(out) <= MAX_VARIANTS:
        raise InvalidValue(f"a variant flag needs 2 to {MAX_VARIANTS} variants, got {len(out)}")
    total = sum(w for _, w in out)
    if total != 100:
        raise InvalidValue(f"variant weights add up to {total}, not 100: adjust them, e.g. a=50,b=50")
    return tuple(out)


def _variant_name(name: object) -> str:
    if not isinstance(name, str) or not _VARIANT_NAME.fullmatch(name):
        raise InvalidValue(
            f"variant name {name!r} is not valid: use a letter or digit then up to 63 of A-Z a-z 0-9 _ . -"
        )
    if name in ("on", "off"):
        raise InvalidValue(f"variant name {name!r} is reserved for on/off flags: pick another name")
    return name


def _variant_weight(name: object, weight: object) -> int:
    if isinstance(weight, str) and weight.isdigit():
        weight = int(weight)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise InvalidValue(f"variant {name!r} has weight {weight!r}: use a whole percent 0-100")
    return weight


def decode_flag(raw: str) -> Flag:
    """A stored value. Anything unreadable (written by hand) is off, as any value but
    "1" always was: a bad rule must neither take the snapshot down nor turn a flag on."""
    if raw == "1":
        return Flag(on=True)
    try:
        data = json.loads(raw)
    except ValueError:
        return Flag(on=False)
    if not isinstance(data, dict) or not isinstance(data.get("on"), bool):
        return Flag(on=False)
    try:
        if "variants" in data:
            return Flag(on=data["on"], variants=parse_variants(data["variants"]))
        if "percent" in data:
            return Flag(on=data["on"], percent=parse_percent(data["percent"]))
    except InvalidValue:
        return Flag(on=False)
    return Flag(on=data["on"])


def decode_flags(raw: Mapping[str, str]) -> Mapping[str, Flag]:
    return MappingProxyType({name: decode_flag(text) for name, text in raw.items()})


def stored_of(raw: str | None) -> Stored | None:
    """The audit form of a stored value (None: no such flag)."""
    return None if raw is None else decode_flag(raw).stored()


def from_stored(stored: Stored | None) -> Flag | None:
    if stored is None:
        return None
    if isinstance(stored, bool):
        return Flag(on=stored)
    return decode_flag(json.dumps(stored))


def with_rule(
    before: Flag | None,
    *,
    on: bool | None = None,
    percent: int | None = None,
    variants: tuple[tuple[str, int], ...] = (),
) -> Flag:
    """The flag after a change: a new rule replaces the old one; the switch stays as it
    was unless `on` says otherwise (a new flag starts on)."""
    switch = on if on is not None else (before.on if before is not None else True)
    if variants:
        return Flag(on=switch, variants=variants)
    if percent is not None:
        return Flag(on=switch, percent=percent)
    if before is None:
        return Flag(on=switch)
    return Flag(on=switch, percent=before.percent, variants=before.variants)
