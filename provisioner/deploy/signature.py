"""Checking a code host's push webhook (pure): the HMAC signature, the sender's network,
and the push event itself."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

from provisioner.errors import DeployInputError

PREFIX = "sha256="
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def signature(secret: str, body: bytes) -> str:
    """What X-Hub-Signature-256 carries: `sha256=` and the hex HMAC-SHA256 of the body."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` signs `body` with `secret`, compared in constant time."""
    if not secret or not header:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode("utf-8", "replace"))


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def sender_allowed(address: str | None, allowed: Sequence[Network]) -> bool:
    """Any sender when no network is configured; else one inside a configured network."""
    if not allowed:
        return True
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in allowed)


@dataclass(frozen=True, slots=True)
class PushEvent:
    ref: str
    before: str
    after: str
    repository: str  # the repository's full name, for the log
    forced: bool = False  # the code host's word that the branch was force-pushed


def parse_push(body: bytes) -> PushEvent:
    """The fields of a push event a deploy needs; DeployInputError says what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DeployInputError("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise DeployInputError("the body is not a JSON object")
    fields = {}
    for name in ("ref", "before", "after"):
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise DeployInputError(f"the push event has no {name!r} string")
        fields[name] = value
    repo = data.get("repository")
    full_name = repo.get("full_name") if isinstance(repo, dict) else None
    forced = data.get("forced", False)
    if not isinstance(forced, bool):
        raise DeployInputError("the push event's 'forced' is not true or false")
    return PushEvent(
        fields["ref"],
        fields["before"],
        fields["after"],
        full_name if isinstance(full_name, str) else "",
        forced,
    )
