"""Who may change state: a pure check, compared in constant time."""

from __future__ import annotations

import hmac
import ipaddress

from proxy.errors import Forbidden, Unauthorized


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


def authorize(configured: str | None, presented: str | None, peer_host: str | None) -> None:
    """Raise unless the caller may mutate state.

    With a token configured, the token is required from everyone (loopback
    included: a local process is not necessarily trusted). Without one, only
    loopback callers may write.
    """
    if configured:
        if presented is None:
            raise Unauthorized("this change needs a token: send Authorization: Bearer <PROXY_ADMIN_TOKEN>")
        if not hmac.compare_digest(presented.encode(), configured.encode()):
            raise Unauthorized("the token does not match PROXY_ADMIN_TOKEN")
        return
    if not is_loopback(peer_host):
        raise Forbidden(
            "changes are accepted only from loopback when no PROXY_ADMIN_TOKEN is set:"
            " set one to allow remote changes"
        )
