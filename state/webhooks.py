"""The push webhook's replay memory: signed bodies already accepted.

GitHub's signature covers the body, not the `X-GitHub-Delivery` header, so a captured
push replayed under a new delivery id passes the signature check; its body does not
change, so its digest is what is remembered.
"""

from __future__ import annotations

import hashlib
import time

from state.base import Accessor, guarded


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class WebhookMemory(Accessor):
    async def remember_body(self, body: bytes, ttl_s: float) -> bool:
        """Note a signed body; False if the same body was accepted within `ttl_s` (a replay)."""
        key = self.keys.webhook_body(body_digest(body))
        ms = max(1, int(ttl_s * 1000))
        return bool(await guarded(lambda: self.redis.set(key, repr(time.time()), nx=True, px=ms)))
