"""Which version serves a request: a pure function of snapshot, facts and a draw.

The model is kamal-proxy's rollout controller: a stable bucket against a split
point. A client's bucket (0-99) lives in a cookie; it goes to staging when
bucket < weight, so raising the weight only adds users and nobody flips.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from state import Snapshot

Version = Literal["production", "staging"]
Override = Literal["always", "never"]

BUCKET_COOKIE = "sy_bucket"
OVERRIDE_COOKIE = "canary"
OVERRIDE_HEADER = b"x-canary"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    bucket: int | None  # from the cookie; None when absent or unreadable
    override: Override | None  # from X-Canary or the canary cookie


@dataclass(frozen=True, slots=True)
class Decision:
    version: Version
    bucket: int
    new_bucket: bool  # the proxy should hand the client this bucket in a cookie
    reason: str  # short word for metrics and logs


def decide(snapshot: Snapshot, facts: RequestFacts, draw: int, *, allow_override: bool = True) -> Decision:
    """Route one request. `draw` is a uniform integer 0-99 used only without a cookie."""
    bucket = facts.bucket if facts.bucket is not None else draw
    new_bucket = facts.bucket is None
    if snapshot.alert is not None:
        return _decision("production", bucket, new_bucket, "alert")
    if not snapshot.staging:
        return _decision("production", bucket, new_bucket, "no-staging")
    if not snapshot.production:
        # Nothing else can serve: staging is better than a 503.
        return _decision("staging", bucket, new_bucket, "no-production")
    if allow_override and facts.override is not None:
        version: Version = "staging" if facts.override == "always" else "production"
        return _decision(version, bucket, new_bucket, "override")
    if bucket < snapshot.weight:
        return _decision("staging", bucket, new_bucket, "weight")
    return _decision("production", bucket, new_bucket, "weight")


# Decisions are few (2 versions x 100 buckets x 2 x 5 reasons) and immutable:
# made once, not once per request.
_decision = functools.lru_cache(maxsize=4096)(Decision)
NO_FACTS = RequestFacts(bucket=None, override=None)


_COOKIE_PAIR = re.compile(r"\s*([^=;\s]+)\s*=\s*([^;]*)")


def facts_from(cookie_header: str | None, override_header: str | None) -> RequestFacts:
    if not cookie_header and not override_header:
        return NO_FACTS
    bucket: int | None = None
    override: Override | None = None
    if cookie_header:
        for name, raw in _COOKIE_PAIR.findall(cookie_header):
            value = raw.strip().strip('"')
            # isascii: str.isdigit() also accepts "²", which int() refuses.
            if name == BUCKET_COOKIE and value.isascii() and value.isdigit() and len(value) <= 2:
                bucket = int(value)
            elif name == OVERRIDE_COOKIE:
                override = _override(value) or override
    if override_header:
        override = _override(override_header.strip()) or override
    return RequestFacts(bucket=bucket, override=override)


def facts_of(cookie: bytes | None, override: bytes | None) -> RequestFacts:
    """`facts_from` on a request's raw Cookie and X-Canary values."""
    if cookie is None and override is None:
        return NO_FACTS
    return facts_from(
        cookie.decode("latin-1") if cookie else None, override.decode("latin-1") if override else None
    )


def _override(value: str) -> Override | None:
    value = value.lower()
    if value == "always":
        return "always"
    if value == "never":
        return "never"
    return None


def normalise_path(raw_target: str) -> str:
    """The path a backend would most likely serve, for matching flag routes.

    Forwarding keeps the raw bytes; this is only for decisions, and it leans
    towards a match: percent-decoding, dot segments, repeated slashes and case
    must not let a client walk around a blocked route. Java and IIS backends
    also drop `;` path parameters and read a backslash as a slash, so this does too.
    """
    path = raw_target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        # absolute-form (http://host/path) or authority-form
        scheme_end = path.find("://")
        if scheme_end >= 0:
            slash = path.find("/", scheme_end + 3)
            path = path[slash:] if slash >= 0 else "/"
        else:
            path = "/" + path
    path = unquote(path, errors="replace").replace("\\", "/")
    out: list[str] = []
    for raw_segment in path.split("/"):
        segment = raw_segment.partition(";")[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return ("/" + "/".join(out)).lower()


def blocking_flag(snapshot: Snapshot, path: str) -> str | None:
    """The name of a flag that is on and bound to `path` (already normalised), if any."""
    for name, prefixes in snapshot.flag_routes.items():
        if not snapshot.flags.get(name):
            continue
        for prefix in prefixes:
            p = prefix.lower()
            if p in ("/", path) or path.startswith(p + "/"):
                return name
    return None
