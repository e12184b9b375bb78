"""The forwarded request head and the relayed response head, as plain bytes."""

from __future__ import annotations

import pytest

from proxy.forward import interim_head, request_head, response_head, switch_head


def req(headers: list[tuple[bytes, bytes]], **kw: object) -> list[bytes]:
    nominated: frozenset[bytes] = kw.pop("nominated", frozenset())  # type: ignore[assignment]
    args: dict[str, object] = {
        "peer": b"10.0.0.9",
        "host": b"shop.example",
        "minor": 1,
        "flags_on": (),
        "chunked": False,
        "upgrade": None,
    }
    args.update(kw)
    head = request_head(
        b"GET",
        b"/a%2Fb?x=1&y",
        [(n.lower(), n, v) for n, v in headers],
        nominated,
        **args,  # type: ignore[arg-type]
    )
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].split(b"\r\n")


def test_the_request_line_and_fields_pass_byte_for_byte() -> None:
    lines = req([(b"Host", b"shop.example"), (b"X-Custom", b"  spaced  "), (b"Cookie", b"a=1")])
    assert lines[0] == b"GET /a%2Fb?x=1&y HTTP/1.1"
    assert b"Host: shop.example" in lines and b"X-Custom:   spaced  " in lines and b"Cookie: a=1" in lines


def test_hop_by_hop_and_nominated_fields_are_dropped() -> None:
    lines = req(
        [
            (b"Connection", b"keep-alive, X-Secret"),
            (b"Keep-Alive", b"5"),
            (b"TE", b"trailers"),
            (b"X-Secret", b"s"),
        ],
        nominated=frozenset({b"x-secret", b"keep-alive"}),
    )
    assert not any(
        line.split(b":")[0].lower() in {b"connection", b"keep-alive", b"te", b"x-secret"} for line in lines
    )


CLAIMS = [
    (b"X-Forwarded-For", b"1.1.1.1"),
    (b"X-Forwarded-For", b"2.2.2.2"),
    (b"Forwarded", b"for=1.1.1.1"),
    (b"Forwarded", b'for="[2001:db8::1]";proto=https'),
    (b"X-Real-IP", b"1.1.1.1"),
]


def test_who_the_client_is_comes_from_the_peer_unless_it_is_trusted() -> None:
    lines = req(CLAIMS)
    assert b"X-Forwarded-For: 10.0.0.9" in lines
    assert b'Forwarded: for=10.0.0.9;host="shop.example";proto=http' in lines
    assert b"X-Real-IP: 10.0.0.9" in lines
    assert not any(b"1.1.1.1" in line or b"2001:db8" in line for line in lines)


def test_a_trusted_proxys_forwarding_fields_are_appended_to() -> None:
    lines = req(CLAIMS, trusted=True)
    assert b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9" in lines
    ours = b'for=10.0.0.9;host="shop.example";proto=http'
    assert b'Forwarded: for=1.1.1.1, for="[2001:db8::1]";proto=https, ' + ours in lines
    assert [line for line in lines if line.startswith(b"X-Real-IP")] == [b"X-Real-IP: 1.1.1.1"]


def test_an_ipv6_peer_is_quoted_in_forwarded() -> None:
    lines = req([], peer=b"::1", host=None)
    assert b'Forwarded: for="[::1]";proto=http' in lines


def test_forwarding_fields_are_the_proxys_own() -> None:
    lines = req(
        [
            (b"X-Forwarded-For", b"1.1.1.1"),
            (b"X-Forwarded-For", b"2.2.2.2"),
            (b"X-Forwarded-Proto", b"https"),
            (b"X-Forwarded-Host", b"evil"),
            (b"X-Feature-Flags", b"admin"),
        ],
        flags_on=("beta", "disableSET"),
        trusted=True,
    )
    assert b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9" in lines
    assert b"X-Forwarded-Proto: http" in lines and b"X-Forwarded-Proto: https" not in lines
    assert b"X-Forwarded-Host: shop.example" in lines and b"X-Forwarded-Host: evil" not in lines
    assert b"X-Feature-Flags: beta,disableSET" in lines and b"X-Feature-Flags: admin" not in lines
    assert b"Via: 1.1 switchyard" in lines


def test_chunked_and_upgrade_requests_say_so() -> None:
    lines = req([], chunked=True, upgrade=b"websocket", minor=0, host=None)
    assert b"Transfer-Encoding: chunked" in lines
    assert b"Connection: upgrade" in lines and b"Upgrade: websocket" in lines
    assert b"Via: 1.0 switchyard" in lines
    assert not any(line.startswith(b"X-Forwarded-Host") for line in lines)


def resp(
    status: int,
    headers: list[tuple[bytes, bytes]],
    *,
    client_minor: int = 1,
    head: bool = False,
    keep: bool = True,
) -> tuple[list[bytes], bytes, bool, bool]:
    data, framing, until_close, keep_alive = response_head(
        status, client_minor, 1, headers, head_request=head, keep_alive=keep, extra=b"Set-Cookie: sy=1\r\n"
    )
    return data[:-4].split(b"\r\n"), framing, until_close, keep_alive


def test_a_length_framed_response_keeps_its_fields_and_cookies() -> None:
    lines, framing, until_close, keep = resp(
        200,
        [
            (b"Content-Length", b"5"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
            (b"Keep-Alive", b"t=5"),
        ],
    )
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines.count(b"Set-Cookie: a=1") == 1 and lines.count(b"Set-Cookie: b=2") == 1
    assert b"Set-Cookie: sy=1" in lines and b"Keep-Alive: t=5" not in lines
    assert (framing, until_close, keep) == (b"length", False, True)


def test_a_chunked_upstream_is_rechunked_for_http_11_and_closed_for_http_10() -> None:
    lines, framing, until_close, keep = resp(200, [(b"Transfer-Encoding", b"chunked")])
    assert (framing, until_close, keep) == (b"chunked", False, True)
    assert lines.count(b"Transfer-Encoding: chunked") == 1
    lines, framing, _, keep = resp(200, [(b"Transfer-Encoding", b"chunked")], client_minor=0)
    assert (framing, keep) == (b"close", False) and b"Connection: close" in lines
    assert lines[0] == b"HTTP/1.0 200 OK"


def test_a_body_ended_by_close_is_marked() -> None:
    _, framing, until_close, _ = resp(200, [])
    assert framing == b"chunked" and until_close


@pytest.mark.parametrize(("status", "head"), [(204, False), (304, False), (200, True)])
def test_no_body_answers(status: int, head: bool) -> None:
    _, framing, until_close, keep = resp(status, [(b"Content-Length", b"10")], head=head)
    assert (framing, until_close, keep) == (b"none", False, True)


def test_fields_the_upstream_nominates_are_dropped_but_not_essentials() -> None:
    lines, *_ = resp(
        200,
        [(b"Connection", b"X-Internal, Content-Length"), (b"X-Internal", b"1"), (b"Content-Length", b"0")],
    )
    assert b"X-Internal: 1" not in lines and b"Content-Length: 0" in lines


def test_http_10_keep_alive_and_close_are_spelled_out() -> None:
    lines, *_ = resp(200, [(b"Content-Length", b"0")], client_minor=0)
    assert b"Connection: keep-alive" in lines
    lines, _, _, keep = resp(200, [(b"Content-Length", b"0")], keep=False)
    assert b"Connection: close" in lines and not keep


def test_interim_and_switching_heads() -> None:
    assert interim_head(103, [(b"Link", b"</a.css>; rel=preload"), (b"Connection", b"x")]) == (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    )
    head = switch_head(
        [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Accept", b"k")], b"x"
    )
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: k\r\n" in head and head.endswith(
        b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
