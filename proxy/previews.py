"""Which preview a request's Host names, if any: a pure function of bytes.

`<name>.<preview_domain>` (any case, with a port or a trailing dot) is preview `<name>`;
a host that merely contains the domain (`x.preview.localhost.evil.com`) is not one.
A request for a preview goes to that preview's backends or gets a 404: never to
production or staging, whose pool a failed attempt's retry must not reach either.
"""

from __future__ import annotations

import functools

from proxy.errors import NoBackend, NoPreview, ProxyError
from state import Snapshot


@functools.lru_cache(maxsize=4096)
def preview_name(host: bytes, suffix: bytes) -> str | None:
    """The preview `host` names, or None; `suffix` is b"." + the lower-case preview domain.

    `host` is a Host value the request side already checked (`http1.valid_host`): a
    colon outside an IP literal's brackets starts the port. Cached, as `valid_host` is:
    a proxy sees few distinct hosts, so a request costs one lookup.
    """
    h = host.lower()
    if h[:1] != b"[":
        h = h.partition(b":")[0]
    if h[-1:] == b".":
        h = h[:-1]
    if not h.endswith(suffix):
        return None
    return h[: -len(suffix)].decode("latin-1")


def pool_of(snap: Snapshot, version: str, preview: str | None) -> tuple[str, ...]:
    """The backends a request routed to `version` (and `preview`) may be sent to."""
    if preview is not None:
        return snap.previews.get(preview, ())
    return snap.production if version == "production" else snap.staging


def no_route(preview: str | None) -> ProxyError:
    """The answer to a request whose pool is empty: an unknown preview is a 404 naming it."""
    if preview is None:
        return NoBackend("no backend is registered: add one with `python -m proxy pool add`")
    return NoPreview(
        f"no preview named {preview!r}: see `python -m provisioner previews list`", preview=preview
    )
