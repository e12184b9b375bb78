"""HTTP/1.1 message pieces the proxy writes: header filtering and framing."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from http import HTTPStatus

# RFC 9110 7.6.1: hop-by-hop fields, plus the legacy ones proxies must drop.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Connection may not nominate these away: the message means nothing without them.
PROTECTED = frozenset({b"host", b"content-length", b"cookie", b"authorization"})

REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    tokens.discard(b"")
    return frozenset(tokens)


def end_to_end(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop fields and whatever Connection names (except the protected)."""
    nominated = connection_tokens(headers) - PROTECTED
    drop = HOP_BY_HOP | nominated if nominated else HOP_BY_HOP
    return [(n, v) for n, v in headers if n.lower() not in drop]


@functools.lru_cache(maxsize=512)
def status_line(status: int, minor: int = 1) -> bytes:
    return b"HTTP/1.%d %d %s\r\n" % (minor, status, REASONS.get(status, b"Unknown"))


def encode_headers(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def simple_response(
    status: int, body: bytes, *, close: bool, extra: Sequence[tuple[bytes, bytes]] = ()
) -> bytes:
    head = [
        status_line(status),
        b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body),
    ]
    if extra:
        head.append(encode_headers(extra))
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(body)
    return b"".join(head)


# RFC 9110 7.2 / RFC 3986 3.2.2: a reg-name or an IP literal, then an optional port.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{0,5})?")


@functools.lru_cache(maxsize=1024)
def valid_host(value: bytes) -> bool:
    """Whether a Host field value (or an absolute target's authority) is usable."""
    return _HOST.fullmatch(value) is not None


def split_absolute(target: bytes) -> tuple[bytes, bytes] | None:
    """An absolute-form target (RFC 9112 3.2.2) as (origin-form target, authority);
    None when it is not an http(s) URI with a valid authority and no userinfo."""
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None
    cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not valid_host(authority) or b"@" in authority:
        return None
    if not path.startswith(b"/"):
        path = b"/" + path
    return path, authority
