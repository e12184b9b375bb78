"""Deploy, rollback and preview events in a chat room: a Slack-compatible incoming webhook
(Slack, Mattermost, Rocket.Chat and Discord's /slack endpoint read the same shape).

Apart from the signed JSON webhook (`notify.py`), which it extends: its URL is a secret
(it is the credential), from PROVISIONER_CHAT_WEBHOOK_URL or a 0600 file, and appears in
no log line. Delivery is tried a few times; a failure is logged and never fails the deploy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import aiohttp

from provisioner.notify import TIMEOUT_S, Notifier, shown

log = logging.getLogger("provisioner.notify")
ATTEMPTS = 3
BACKOFF_S = 0.5
CHAT_EVENTS = ("deploy.", "rollback.", "preview.")
_COLOURS = {"succeeded": "good", "deployed": "good", "removed": "#439FE0", "failed": "danger"}


def chat_message(event: str, fields: Mapping[str, object], *, by: str, at: float) -> dict[str, object]:
    """The message (`text` and one attachment) for an event (pure)."""
    action, _, result = event.partition(".")
    sha = str(fields.get("sha") or "")
    short = sha[:8] or "?"
    if action == "preview":
        name = fields.get("preview", "?")
        text = {
            "deployed": f"preview {name} is {short} of {fields.get('branch', '?')}: {fields.get('url', '')}",
            "removed": f"preview {name} removed: {fields.get('why', '')}",
        }.get(result, f"preview {name} of {fields.get('branch', '?')} failed: {fields.get('error', '')}")
    else:
        text = f"{action} of {short} to {fields.get('env', '?')} {result}"
        if result == "succeeded":
            text += f" in {fields.get('seconds', '?')}s"
        elif fields.get("failed_host"):
            text += f" at {fields['failed_host']}, task '{fields.get('failed_task', '?')}'"
        elif fields.get("error"):
            text += f": {str(fields['error'])[:200]}"
    detail: list[tuple[str, object]] = [("sha", sha or "-"), ("by", by), ("result", result)]
    if fields.get("url"):
        detail.append(("preview", fields["url"]))
    if result == "failed":
        detail.append(("failed task", fields.get("failed_task") or str(fields.get("error", "?"))[:200]))
    return {
        "text": text,
        "attachments": [
            {
                "fallback": text,
                "color": _COLOURS.get(result, "#cccccc"),
                "title": event,
                "fields": [{"title": t, "value": str(v), "short": t != "failed task"} for t, v in detail],
                "ts": int(at),
            }
        ],
    }


class ChatNotifier(Notifier):
    """The signed webhook's notifier that also posts deploy events to a chat room."""

    def __init__(self, webhook_url: str, secret: str | None, chat_url: str, *, by: str) -> None:
        super().__init__(webhook_url, secret)
        self._chat_url = chat_url
        self.by = by

    async def notify(self, event: str, fields: Mapping[str, object]) -> bool:
        delivered = await super().notify(event, fields)
        if self._chat_url and event.startswith(CHAT_EVENTS):
            delivered = (
                await self.post_chat(chat_message(event, fields, by=self.by, at=time.time())) and delivered
            )
        return delivered

    async def post_chat(self, message: Mapping[str, object]) -> bool:
        """Post, retrying a refused connection, a timeout, a 429 or a 5xx; True once delivered."""
        where = shown(self._chat_url)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session,
                    session.post(self._chat_url, json=message) as response,
                ):
                    if response.status < 300:
                        return True
                    log.warning("chat webhook %s answered %d (try %d)", where, response.status, attempt)
                    if response.status < 500 and response.status != 429:
                        return False  # refused for good (a revoked URL): trying again will not help
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("chat webhook %s failed (try %d): %s", where, attempt, type(exc).__name__)
            if attempt < ATTEMPTS:
                await asyncio.sleep(BACKOFF_S * attempt)
        return False
