"""redact_url: passwords and secret-looking query values masked, by value."""

from __future__ import annotations

import pytest

from settings import redact_url


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:Pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:Pw@host/0", "rediss://user:***@host/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("error (Redis: redis://:p@ss@h/0)", "error (Redis: redis://:***@h/0)"),
        ("/disable/1?token=abc", "/disable/1?token=***"),
        ("/x?a=1&TOKEN=abc&b=2", "/x?a=1&TOKEN=***&b=2"),
        (
            "/x?access_token=a&api_key=b&password=c&sig=d",
            "/x?access_token=***&api_key=***&password=***&sig=***",
        ),
        ("/x?client_secret=a#frag", "/x?client_secret=***#frag"),
        ("/x?tokens=1&monkey=2&keyboard=3", "/x?tokens=1&monkey=2&keyboard=3"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_redact_url(text: str, shown: str) -> None:
    assert redact_url(text) == shown
