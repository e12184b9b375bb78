"""Typed values of the schema and the rules that validate them (no I/O)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from state.errors import InvalidValue
from state.flags import Flag

PoolName = Literal["production", "staging"]
POOLS: tuple[PoolName, ...] = ("production", "staging")
DEFAULT_WEIGHT = 30
# The original system's feature flag: on means the SET feature is disabled.
DEFAULT_FLAG_ROUTES: Mapping[str, tuple[str, ...]] = MappingProxyType({"disableSET": ("/set",)})

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_FLAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Alert:
    """The kill switch: while present, no request goes to staging."""

    by: str
    reason: str
    at: float | None

    @classmethod
    def decode(cls, raw: str) -> Alert:
        # Any value means "set": the original system wrote a bare "yes".
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict):
            at = data.get("at")
            return cls(
                by=str(data.get("by", "unknown")),
                reason=str(data.get("reason", "")),
                at=float(at) if isinstance(at, int | float) else None,
            )
        return cls(by="unknown", reason=raw, at=None)

    def encode(self) -> str:
        return json.dumps({"by": self.by, "reason": self.reason, "at": self.at})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a proxy needs to route, read in one atomic step."""

    version: int = 0
    production: tuple[str, ...] = ()
    staging: tuple[str, ...] = ()
    weight: int = DEFAULT_WEIGHT
    alert: Alert | None = None
    flags: Mapping[str, bool] = field(default_factory=dict)
    flag_routes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_FLAG_ROUTES)
    # The whole flags (percentages, variants: state/flags.py). Give either this or
    # `flags`: the other is derived, `flags` being the on-for-everyone view of these.
    flag_rules: Mapping[str, Flag] = field(default_factory=dict)
    # Preview name -> its backends (state/previews.py): reached only by its own host name.
    previews: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Derived once: readers look at it on every request.
    flags_on: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.flag_rules and not self.flags:
            object.__setattr__(self, "flags", {n: f.on_for_everyone for n, f in self.flag_rules.items()})
        elif self.flags and not self.flag_rules:
            object.__setattr__(self, "flag_rules", {n: Flag(on=on) for n, on in self.flags.items()})
        object.__setattr__(self, "flags_on", tuple(sorted(n for n, on in self.flags.items() if on)))

    def pool(self, name: PoolName) -> tuple[str, ...]:
        return self.production if name == "production" else self.staging

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "pools": {"production": list(self.production), "staging": list(self.staging)},
            "weight": self.weight,
            "alert": None
            if self.alert is None
            else {"by": self.alert.by, "reason": self.alert.reason, "at": self.alert.at},
            "flags": dict(sorted(self.flags.items())),
            "flag_routes": {k: list(v) for k, v in sorted(self.flag_routes.items())},
            "flag_rules": {k: v.to_json() for k, v in sorted(self.flag_rules.items())},
            "previews": {k: list(v) for k, v in sorted(self.previews.items())},
        }


def parse_pool(value: str) -> PoolName:
    if value == "production":
        return "production"
    if value == "staging":
        return "staging"
    raise InvalidValue(f"unknown pool {value!r}: use production or staging")


def parse_weight(value: object) -> int:
    """Canary weight: an integer percent 0-100 (a string of digits is accepted)."""
    if isinstance(value, bool):
        raise InvalidValue(f"weight {value!r} is not a whole percent: use an integer 0-100")
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,3}\s*", value):
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidValue(f"weight {value!r} is out of range: use an integer 0-100")
    return value


def parse_backend_url(value: str) -> str:
    """A backend base URL, `http://host:port`, returned in canonical form."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidValue(f"backend URL {value!r} is not valid ({exc}): use http://host:port") from exc
    if parts.scheme != "http":
        raise InvalidValue(f"backend URL {value!r} needs the http:// scheme: use http://host:port")
    if not parts.hostname:
        raise InvalidValue(f"backend URL {value!r} has no host: use http://host:port")
    if port == 0:
        raise InvalidValue(f"backend URL {value!r} has port 0: use a real port, http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise InvalidValue(
            f"backend URL {value!r} must be a base URL without path, query or credentials:"
            " use http://host:port"
        )
    host = parts.hostname
    if not _connectable_host(host):
        raise InvalidValue(
            f"backend URL {value!r} has an invalid host {host!r}: use an IP address or a DNS name"
            " of letters, digits and hyphens, each label 1-63 characters: use http://host:port"
        )
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port if port is not None else 80}"


def _connectable_host(host: str) -> bool:
    """An IP literal or an RFC 1123 host name: what a connect can be asked for."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)
    return True


def parse_flag_name(value: str) -> str:
    if not _FLAG_NAME.fullmatch(value):
        raise InvalidValue(
            f"flag name {value!r} is not valid: use a letter then up to 63 letters, digits, _ . -"
        )
    return value


def parse_route_prefix(value: str) -> str:
    if not value.startswith("/") or "?" in value or "#" in value or len(value) > 256:
        raise InvalidValue(f"route {value!r} is not a path prefix: use a path such as /set")
    return value.rstrip("/") or "/"


def decode_flag_routes(raw: Mapping[str, str]) -> Mapping[str, tuple[str, ...]]:
    """Stored bindings over the defaults; an unreadable entry keeps the default."""
    routes = dict(DEFAULT_FLAG_ROUTES)
    for name, text in raw.items():
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, list) and all(isinstance(p, str) for p in value):
            routes[name] = tuple(value)
    return MappingProxyType(routes)
