"""The page's response headers and the cross-site write check, pure.

A write from a browser carries Origin (and Sec-Fetch-Site): one from another site is
refused, so a page elsewhere cannot drive a proxy that trusts loopback (no token set)
through the operator's browser. Clients that are not browsers send neither and are
judged by the token alone."""

from __future__ import annotations

from urllib.parse import urlsplit

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        # The login form is read by the script; were the script gone, no submit may
        # carry the token anywhere (a GET would put it in a URL).
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# OFREP evaluates flags by POST: a read, which changes nothing.
READ_ONLY_PREFIXES = ("/ofrep/",)


def cross_site_write(
    method: str, path: str, origin: str | None, fetch_site: str | None, host: str | None
) -> bool:
    """Whether a request is a write that a browser sent from another origin."""
    if method.upper() in SAFE_METHODS or path.startswith(READ_ONLY_PREFIXES):
        return False
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    if origin is None:
        return False
    if origin == "null":
        return True
    parts = urlsplit(origin)
    return not parts.netloc or parts.netloc.lower() != (host or "").lower()
