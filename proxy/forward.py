"""The heads the proxy writes: the request it forwards and the response it
relays (pure: bytes in, bytes out; RFC 9110 section 7.6, RFC 9112).

Request: hop-by-hop fields and whatever `Connection` nominates are dropped;
`X-Forwarded-For` and `Forwarded` (RFC 7239) are appended to when the peer is a
trusted proxy and started afresh otherwise, `X-Real-IP` is the peer's unless a
trusted proxy set it; `X-Forwarded-Proto`/`-Host`, `Via` and the flags are set
(a client's own copies of those are dropped), and the method, target and other
fields pass byte for byte.
Response: the same filtering, and the framing towards the client decided in
the same pass over the fields.
"""

from __future__ import annotations

import functools

from proxy.http1 import HOP_BY_HOP, PROTECTED, encode_headers, end_to_end, status_line

# Set by the proxy, never taken from the client.
_OWN = frozenset({b"x-forwarded-proto", b"x-forwarded-host", b"x-feature-flags"})
# Who the client is: kept from a trusted proxy only.
_FORWARDING = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})
_NO_BODY_STATUS = frozenset({204, 304})


def request_head(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes, bytes]],  # (lower-case name, name, value)
    nominated: frozenset[bytes],
    *,
    peer: bytes,
    host: bytes | None,
    minor: int,
    flags_on: tuple[str, ...],
    chunked: bool,
    upgrade: bytes | None,
    trusted: bool = False,
) -> bytes:
    out = [method, b" ", target, b" HTTP/1.1\r\n"]
    xff: bytes | None = None
    fwd: bytes | None = None
    real_ip = False
    for low, name, value in headers:
        if low in HOP_BY_HOP or (nominated and low in nominated):
            continue
        if low in _FORWARDING:
            if not trusted:
                continue  # a client's word for who it is: not believed
            if low == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
                continue
            if low == b"forwarded":
                fwd = value if fwd is None else fwd + b", " + value
                continue
            real_ip = True
        elif low in _OWN:
            continue
        out.append(name + b": " + value + b"\r\n")
    if xff is None and fwd is None and not real_ip:
        out.append(_own_fields(peer, host, minor))  # the usual case, made once per peer and host
    else:
        out.append(b"X-Forwarded-For: " + (peer if xff is None else xff + b", " + peer) + b"\r\n")
        element = forwarded_element(peer, host)
        out.append(b"Forwarded: " + (element if fwd is None else fwd + b", " + element) + b"\r\n")
        if not real_ip:
            out.append(b"X-Real-IP: " + peer + b"\r\n")
        out.append(_proxy_fields(host, minor))
    if flags_on:
        out.append(b"X-Feature-Flags: %s\r\n" % ",".join(flags_on).encode())
    if chunked:
        out.append(b"Transfer-Encoding: chunked\r\n")
    if upgrade is not None:
        out.append(b"Connection: upgrade\r\nUpgrade: " + upgrade + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


@functools.lru_cache(maxsize=1024)
def _own_fields(peer: bytes, host: bytes | None, minor: int) -> bytes:
    """This hop's fields when the request brought none to append to."""
    element = forwarded_element(peer, host)
    return (
        b"X-Forwarded-For: " + peer + b"\r\nForwarded: " + element + b"\r\nX-Real-IP: " + peer + b"\r\n"
    ) + _proxy_fields(host, minor)


def _proxy_fields(host: bytes | None, minor: int) -> bytes:
    proto = b"X-Forwarded-Proto: http\r\n"
    if host is not None:
        proto += b"X-Forwarded-Host: " + host + b"\r\n"
    return proto + (b"Via: 1.1 switchyard\r\n" if minor else b"Via: 1.0 switchyard\r\n")


@functools.lru_cache(maxsize=1024)
def forwarded_element(peer: bytes, host: bytes | None) -> bytes:
    """This hop's RFC 7239 element; an IPv6 node is bracketed and quoted (section 6).
    A Host value was checked to hold no quote or backslash, so quoting it is safe."""
    node = b'"[' + peer + b']"' if b":" in peer else peer
    if host is None:
        return b"for=" + node + b";proto=http"
    return b"for=" + node + b';host="' + host + b'";proto=http'


def response_head(
    status: int,
    client_minor: int,
    upstream_minor: int,
    headers: list[tuple[bytes, bytes]],
    *,
    head_request: bool,
    keep_alive: bool,
    extra: bytes = b"",
) -> tuple[bytes, bytes, bool, bool]:
    """The head for the client, its framing (b"none", b"length", b"chunked" or
    b"close"), whether the upstream ends the body by closing, and whether the
    client connection stays open after it. `extra` is more header lines."""
    out = [status_line(status, client_minor)]
    has_length = upstream_chunked = False
    nominated: set[bytes] | None = None
    for name, value in headers:
        low = name.lower()
        if low in HOP_BY_HOP:
            if low == b"transfer-encoding":
                upstream_chunked = b"chunked" in value.lower()
            elif low == b"connection":
                named = {t.strip().lower() for t in value.split(b",")} - HOP_BY_HOP - PROTECTED
                if named:
                    nominated = named if nominated is None else nominated | named
            continue
        if low == b"content-length":
            has_length = True
        out.append(name + b": " + value + b"\r\n")
    if nominated:
        out[1:] = [n + b": " + v + b"\r\n" for n, v in end_to_end(headers)]
    body_allowed = not head_request and status not in _NO_BODY_STATUS
    until_close = body_allowed and not has_length and not upstream_chunked
    if not body_allowed:
        framing = b"none"
    elif has_length:
        framing = b"length"
    elif client_minor == 1:
        framing = b"chunked"
        out.append(b"Transfer-Encoding: chunked\r\n")
    else:
        framing = b"close"
        keep_alive = False
    out.append(b"Via: 1.1 switchyard\r\n" if upstream_minor else b"Via: 1.0 switchyard\r\n")
    if extra:
        out.append(extra)
    if not keep_alive:
        out.append(b"Connection: close\r\n")
    elif client_minor == 0:
        out.append(b"Connection: keep-alive\r\n")
    out.append(b"\r\n")
    return b"".join(out), framing, until_close, keep_alive


def interim_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A 1xx other than 101, relayed as it came, less its hop-by-hop fields."""
    return status_line(status) + encode_headers(end_to_end(headers)) + b"\r\n"


def switch_head(headers: list[tuple[bytes, bytes]], asked: bytes) -> bytes:
    """The 101 that starts a tunnel: the upstream's fields and its Upgrade."""
    upgrade = next((v for n, v in headers if n.lower() == b"upgrade"), asked)
    return (
        status_line(101)
        + encode_headers(end_to_end(headers))
        + b"Connection: upgrade\r\nUpgrade: "
        + upgrade
        + b"\r\n\r\n"
    )
