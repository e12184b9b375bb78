"""Delivers one channel's outbox in order, retrying with capped backoff.

A notice leaves the outbox only once it was sent, so neither an SMTP outage
nor a restart loses one; failures show in the channel's status in Redis.
Nothing a sender raises ends the courier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from monitor.errors import DeliveryError
from monitor.notice import Notice
from state import MonitorStore, NotifierStatus, StateError

log = logging.getLogger("monitor")


class Sender(Protocol):
    channel: str

    async def send(self, notice: Notice) -> str | None:
        """Deliver, or raise DeliveryError; a returned text is a warning (delivered in part)."""
        ...

    async def close(self) -> None: ...


def backoff_s(failures: int, base_s: float, cap_s: float) -> float:
    """Seconds before retry number `failures`: base, 2 x base, 4 x base ... up to cap."""
    return float(min(cap_s, base_s * 2 ** min(max(failures - 1, 0), 30)))


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class Courier:
    def __init__(
        self,
        sender: Sender,
        store: MonitorStore,
        *,
        retry_base_s: float,
        retry_max_s: float,
        idle_poll_s: float = 5.0,
        secrets: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sender = sender
        self.channel = sender.channel
        self.store = store
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.idle_poll_s = idle_poll_s
        self.secrets = tuple(secrets)
        self.clock = clock
        self.wake = asyncio.Event()
        self.status = NotifierStatus(self.channel)
        # The last notice sent but not yet removed (Redis failed in between): not sent twice.
        self._sent_raw: str | None = None

    async def run(self) -> None:
        await self._save()
        failures = 0
        while True:
            try:
                queued = await self.store.next_notice(self.channel)
            except StateError as exc:
                failures += 1
                await self._failed(f"outbox unreadable: {exc}", failures)
                continue
            if queued is None:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.idle_poll_s)
                continue
            if queued.raw != self._sent_raw:
                try:
                    warning = await self._send(queued.notice)
                except DeliveryError as exc:
                    failures += 1
                    await self._failed(str(exc), failures)
                    continue
                self._sent_raw = queued.raw
                failures = 0
                now = self.clock()
                self.status = replace(
                    self.status,
                    state="ok",
                    failures=0,
                    last_error=redact(warning or "", self.secrets),
                    last_attempt_at=now,
                    last_success_at=now,
                    next_attempt_at=None,
                    delivered=self.status.delivered + 1,
                )
                if warning:
                    log.warning("%s delivered in part: %s", self.channel, redact(warning, self.secrets))
                else:
                    log.info(
                        "%s delivered: %s %s",
                        self.channel,
                        queued.notice.get("kind"),
                        queued.notice.get("rule"),
                    )
            try:
                await self.store.delivered(self.channel, queued.raw)
            except StateError as exc:
                failures += 1
                await self._failed(f"sent, but not yet removed from the outbox: {exc}", failures)
                continue
            self._sent_raw = None
            await self._save()

    async def _send(self, data: object) -> str | None:
        try:
            notice = Notice.from_dict(dict(data))  # type: ignore[call-overload]
        except (ValueError, TypeError) as exc:
            log.error("%s: dropping an unreadable notice: %s", self.channel, exc)
            return None
        try:
            return await self.sender.send(notice)
        except DeliveryError:
            raise
        except Exception as exc:
            # A bug in a sender must not end delivery: it is retried like an outage.
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    async def _failed(self, error: str, failures: int) -> None:
        delay = backoff_s(failures, self.retry_base_s, self.retry_max_s)
        now = self.clock()
        error = redact(error, self.secrets)
        self.status = replace(
            self.status,
            state="failing",
            failures=failures,
            last_error=error,
            last_attempt_at=now,
            next_attempt_at=now + delay,
        )
        log.warning(
            "%s delivery failed (attempt %d), retrying in %.1fs: %s", self.channel, failures, delay, error
        )
        await self._save()
        await asyncio.sleep(delay)

    async def _save(self) -> None:
        try:
            await self.store.set_notifier(self.status)
        except StateError as exc:
            log.debug("%s status not saved: %s", self.channel, exc)
