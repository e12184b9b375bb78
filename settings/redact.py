"""Secrets out of text that is shown: the one redaction every program uses for
URLs in error lines, logs and status output."""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@ -> scheme://user:***@, up to the last @ (a password may hold one).
_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:)[^/\s]*@")
# A query parameter whose name says it is a secret: its value goes.
_SECRET_PARAM = re.compile(
    r"(?P<head>[?&;](?:[A-Za-z0-9_.-]*[_.-])?"
    r"(?:token|password|passwd|pwd|secret|signature|sig|key|apikey|auth|authorization|credentials?)=)"
    r"[^&;#\s]*",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """`text` with URL passwords and secret-looking query values masked."""
    if "@" in text:
        text = _PASSWORD.sub(rf"\g<head>{MASK}@", text)
    if "=" in text:
        text = _SECRET_PARAM.sub(rf"\g<head>{MASK}", text)
    return text
