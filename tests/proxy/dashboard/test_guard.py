"""Which writes a browser sent from another site: refused before any handler runs."""

from __future__ import annotations

import pytest

from proxy.dashboard.guard import CSP, cross_site_write

HOST = "127.0.0.1:9090"


@pytest.mark.parametrize(
    ("method", "origin", "fetch_site", "refused"),
    [
        ("GET", "http://evil.example", "cross-site", False),  # reads follow the admin API's rules
        ("PUT", None, None, False),  # curl, the CLI: judged by the token alone
        ("PUT", f"http://{HOST}", "same-origin", False),
        ("PUT", f"http://{HOST}", None, False),
        ("PUT", "http://evil.example", None, True),
        ("POST", "http://127.0.0.1:8080", "same-site", True),  # another port is another origin
        ("DELETE", None, "cross-site", True),
        ("PUT", "null", None, True),  # a sandboxed frame or a file: page
        ("POST", None, "none", False),  # typed by the user
    ],
)
def test_cross_site_writes(method: str, origin: str | None, fetch_site: str | None, refused: bool) -> None:
    assert cross_site_write(method, "/alert", origin, fetch_site, HOST) is refused


def test_an_ofrep_evaluation_is_a_read_though_it_is_a_post() -> None:
    assert not cross_site_write("POST", "/ofrep/v1/evaluate/flags", "http://app.example", "cross-site", HOST)


def test_the_policy_allows_no_inline_code_and_no_framing() -> None:
    assert "unsafe" not in CSP
    assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "form-action 'none'" in CSP
