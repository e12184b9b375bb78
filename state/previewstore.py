"""Writes and reads of previews through `StateStore._mutate`, so a preview appearing or
going is versioned, audited and published like every other routing change: every
proxy routes its host name (or answers 404 for it) within one notice."""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from state.errors import InvalidValue
from state.previews import Preview, decode_previews, parse_preview_name
from state.store import Change, StateStore


class UnknownPreview(InvalidValue, LookupError):
    """No preview by that name (a typo, or removed already)."""


class PreviewStore(StateStore):
    """The state store with the previews' writes (the provisioner's deploys and commands)."""

    @classmethod
    def of(cls, store: StateStore) -> PreviewStore:
        """The same client, key names and actor, with the preview methods."""
        return store if isinstance(store, PreviewStore) else cls(store.redis, store.keys, actor=store.actor)

    async def put_preview(self, name: str, preview: Preview) -> Change:
        """Publish (or replace) a preview; a replaced one keeps its `created_at`."""
        name = parse_preview_name(name)
        if not preview.backends:
            raise InvalidValue(f"preview {name!r} has no backends: give at least one http://host:port")
        key = self.keys.previews

        async def read(p: aioredis.client.Pipeline) -> dict[str, object] | None:
            found = decode_previews({name: raw} if (raw := await p.hget(key, name)) else {})
            return found[name].to_json() if name in found else None

        def after_of(before: dict[str, object] | None) -> dict[str, object]:
            after = preview.to_json()
            if before is not None and before.get("created_at"):
                after["created_at"] = before["created_at"]
            return after

        def apply(p: aioredis.client.Pipeline, after: dict[str, object]) -> None:
            p.hset(key, name, Preview.of(after).encode())

        return await self._mutate(f"preview:{name}", (key,), read, apply, after_of)

    async def remove_preview(self, name: str) -> Change:
        """Remove a preview: its host name answers 404 from the next snapshot on."""
        name = parse_preview_name(name)
        key = self.keys.previews

        async def read(p: aioredis.client.Pipeline) -> str | None:
            return await p.hget(key, name)  # type: ignore[no-any-return]

        return await self._mutate(
            f"preview:{name}", (key,), read, lambda p, _after: p.hdel(key, name), lambda _: None
        )

    async def previews(self) -> Mapping[str, Preview]:
        """Every readable preview, by name."""
        return decode_previews(await self._call(lambda: self.redis.hgetall(self.keys.previews)))

    async def preview(self, name: str) -> Preview:
        """One preview; UnknownPreview when there is none by that name."""
        name = parse_preview_name(name)
        found = await self.previews()
        if name not in found:
            raise UnknownPreview(f"no preview named {name!r}: see `python -m provisioner previews list`")
        return found[name]
