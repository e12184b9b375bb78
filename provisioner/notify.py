"""Telling people what the provisioner did: a log line always, a signed webhook if configured.

A notification that cannot be delivered is logged and dropped: it never fails
or delays the provisioning it reports.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger("provisioner.notify")
SIGNATURE_HEADER = "X-Switchyard-Signature"
TIMEOUT_S = 5.0


def sign(secret: str, body: bytes) -> str:
    """The signature header value: hex HMAC-SHA256 of the body, as GitHub's webhooks do it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def shown(url: str) -> str:
    """The webhook URL fit for a log line: no credentials, path or query (they may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def encode(event: str, fields: Mapping[str, object], at: float) -> bytes:
    return json.dumps({"source": "provisioner", "event": event, "at": at, **fields}, sort_keys=True).encode()


class Notifier:
    def __init__(self, webhook_url: str = "", secret: str | None = None) -> None:
        self.webhook_url = webhook_url
        self._secret = secret

    async def notify(self, event: str, fields: Mapping[str, object]) -> bool:
        """Log `event`; post it to the webhook if there is one. True if delivered (or no webhook)."""
        summary = " ".join(f"{k}={v}" for k, v in sorted(fields.items()) if not isinstance(v, dict | list))
        log.info("%s %s", event, summary)
        if not self.webhook_url:
            return True
        body = encode(event, fields, time.time())
        headers = {"Content-Type": "application/json"}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session,
                session.post(self.webhook_url, data=body, headers=headers) as response,
            ):
                if response.status < 300:
                    return True
                log.warning("webhook %s answered %d to %s", shown(self.webhook_url), response.status, event)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("webhook %s failed for %s: %s", shown(self.webhook_url), event, type(exc).__name__)
        return False
