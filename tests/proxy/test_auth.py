"""Who may change state: the pure check and the bearer header parser."""

from __future__ import annotations

import pytest

from proxy.auth import authorize, bearer, is_loopback
from proxy.errors import Forbidden, ProxyError, Unauthorized

LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1"]
REMOTE = ["10.0.0.5", "192.168.1.2", "2001:db8::1", "fe80::1%eth0", "0.0.0.0", "::", "localhost", "", None]


@pytest.mark.parametrize("peer", LOOPBACK)
def test_without_token_loopback_may_write(peer: str) -> None:
    authorize(None, None, peer)
    authorize("", None, peer)  # an empty token is no token


@pytest.mark.parametrize("peer", REMOTE)
def test_without_token_others_are_forbidden(peer: str | None) -> None:
    with pytest.raises(Forbidden) as info:
        authorize(None, None, peer)
    assert info.value.status == 403
    assert "PROXY_ADMIN_TOKEN" in info.value.message


@pytest.mark.parametrize("peer", REMOTE)
def test_without_token_a_presented_token_does_not_help(peer: str | None) -> None:
    with pytest.raises(Forbidden):
        authorize(None, "anything", peer)


@pytest.mark.parametrize("peer", [*LOOPBACK, "10.0.0.5", "2001:db8::1", None])
def test_with_token_the_right_token_is_enough_from_anywhere(peer: str | None) -> None:
    authorize("s3cret", "s3cret", peer)


@pytest.mark.parametrize("peer", [*LOOPBACK, "10.0.0.5"])
def test_with_token_loopback_is_not_trusted_without_it(peer: str) -> None:
    with pytest.raises(Unauthorized) as info:
        authorize("s3cret", None, peer)
    assert info.value.status == 401
    assert "Bearer" in info.value.message


@pytest.mark.parametrize("presented", ["wrong", "s3cre", "s3cret ", "S3CRET", "s3crét", ""])
def test_with_token_a_wrong_token_is_unauthorized(presented: str) -> None:
    with pytest.raises(Unauthorized) as info:
        authorize("s3cret", presented, "127.0.0.1")
    assert "s3cret" not in info.value.message  # the secret is never echoed
    assert b"s3cret" not in info.value.body()


def test_auth_errors_are_proxy_errors_with_a_json_body() -> None:
    with pytest.raises(ProxyError) as info:
        authorize("s3cret", None, "127.0.0.1")
    assert info.value.body().startswith(b'{"error": "unauthorized"')


@pytest.mark.parametrize("host", LOOPBACK)
def test_is_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", REMOTE)
def test_is_not_loopback(host: str | None) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer s3cret", "s3cret"),
        ("bearer s3cret", "s3cret"),
        ("BEARER s3cret", "s3cret"),
        ("Bearer   s3cret  ", "s3cret"),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("Bearer", None),
        ("Bearers3cret", None),
        ("Basic czNjcmV0", None),
        ("s3cret", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer(header: str | None, token: str | None) -> None:
    assert bearer(header) == token
