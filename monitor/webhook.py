"""The optional chat notifier: a Slack-compatible JSON POST.

The URL carries the channel's token, so it is a secret: it comes only from
MONITOR_WEBHOOK_URL and no error message repeats it.
"""

from __future__ import annotations

import aiohttp

from monitor.errors import DeliveryError
from monitor.notice import Notice, slack_payload


class WebhookSender:
    channel = "webhook"

    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, notice: Notice) -> str | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, json=slack_payload(notice)) as reply:
                text = (await reply.text())[:200]
                if reply.status >= 300:
                    raise DeliveryError(f"webhook answered {reply.status}: {' '.join(text.split())}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            # aiohttp's messages can quote the URL; only the kind of failure is kept.
            raise DeliveryError(f"webhook not reached: {type(exc).__name__}{_host_part(exc)}") from exc
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _host_part(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f" (cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error})"
    return ""
