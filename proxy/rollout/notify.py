"""Rollout notices: the chat webhook (Slack-compatible) and the leader's delivery loop.

A notice waits in the rollout outbox (state/rollouts.py) until it is posted, so a
webhook that is down, or a leader that dies, delays it but never loses it, and a
failed post never holds up a step. The URL carries the channel's token: it is a
secret, and no log line or error repeats it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aiohttp

from state import StateError
from state.rollouts import RolloutStore

log = logging.getLogger("proxy.rollout")

_COLOURS = {"aborted": "danger", "held": "warning", "paused": "warning", "promoting": "good", "done": "good"}


class DeliveryFailed(Exception):
    """The webhook did not take a notice; the message never holds its URL."""


def chat_payload(notice: Mapping[str, object]) -> dict[str, object]:
    """Slack's incoming-webhook form: `text` for the line, one attachment for the verdict."""
    details = notice.get("details") or []
    lines = [str(d) for d in details] if isinstance(details, list) else []
    return {
        "text": str(notice.get("text", "")),
        "attachments": [
            {
                "color": _COLOURS.get(str(notice.get("kind")), "#888888"),
                "title": f"rollout {notice.get('rollout')} of {notice.get('release')}",
                "text": "\n".join(lines) or str(notice.get("text", "")),
                "fields": [
                    {"title": "status", "value": str(notice.get("kind")), "short": True},
                    {"title": "weight", "value": f"{notice.get('weight')}%", "short": True},
                ],
            }
        ],
    }


class ChatWebhook:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, notice: Mapping[str, object]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, json=chat_payload(notice)) as reply:
                if reply.status >= 300:
                    raise DeliveryFailed(f"the rollout chat webhook answered {reply.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"the rollout chat webhook was not reached: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Courier:
    """Posts the outbox's notices in order, one at a time, retrying with a growing pause."""

    def __init__(self, rollouts: RolloutStore, chat: ChatWebhook | None, *, retry_s: float = 1.0) -> None:
        self.rollouts = rollouts
        self.chat = chat
        self.first_retry_s = retry_s
        self.retry_s = retry_s
        self.failures = 0
        self.delivered = 0

    async def deliver_one(self) -> bool:
        """Post the oldest notice; False when there was none or it failed (try again later)."""
        found = await self.rollouts.next_notice()
        if found is None:
            return False
        raw, notice = found
        if self.chat is not None:
            try:
                await self.chat.post(notice)
            except DeliveryFailed as exc:
                self.failures += 1
                log.warning("rollout notice not posted (attempt %d): %s", self.failures, exc)
                return False
        self.failures, self.retry_s = 0, self.first_retry_s
        self.delivered += 1
        await self.rollouts.delivered(raw)
        return True

    async def run(self, leading: asyncio.Event, idle_s: float = 0.5) -> None:
        while True:
            await leading.wait()
            try:
                posted = await self.deliver_one()
            except StateError as exc:
                log.warning("rollout outbox unreadable: %s", exc)
                posted = False
            if not posted:
                await asyncio.sleep(self.retry_s if self.failures else idle_s)
                if self.failures:
                    self.retry_s = min(60.0, self.retry_s * 2)

    async def close(self) -> None:
        if self.chat is not None:
            await self.chat.close()
