"""Writes and reads of one flag's rule (a percentage, variants) through `StateStore._mutate`,
so a rule change is versioned, audited and published like every other change."""

from __future__ import annotations

import redis.asyncio as aioredis

from state.errors import InvalidValue
from state.flags import Flag, Stored, decode_flag, from_stored, stored_of, with_rule
from state.model import parse_flag_name
from state.store import Change, StateStore


class UnknownFlag(InvalidValue, LookupError):
    """A flag that is not set at all (a typo, most often)."""


class FlagStore(StateStore):
    """The state store with one flag's rule as a unit (`flag set --percent`, `--variants`)."""

    @classmethod
    def of(cls, store: StateStore) -> FlagStore:
        """The same client, key names and actor, with the flag methods."""
        return store if isinstance(store, FlagStore) else cls(store.redis, store.keys, actor=store.actor)

    async def set_flag_rule(
        self,
        name: str,
        *,
        on: bool | None = None,
        percent: int | None = None,
        variants: tuple[tuple[str, int], ...] = (),
    ) -> Change:
        """Give a flag a percentage or variants (validated by the caller with
        `parse_percent` / `parse_variants`); a new flag starts on."""
        name = parse_flag_name(name)
        if percent is not None and variants:
            raise InvalidValue("a flag has a percentage or variants, not both: give one")
        key = self.keys.flags

        async def read(p: aioredis.client.Pipeline) -> Stored | None:
            return stored_of(await p.hget(key, name))

        def after_of(before: Stored | None) -> Stored:
            return with_rule(from_stored(before), on=on, percent=percent, variants=variants).stored()

        def apply(p: aioredis.client.Pipeline, after: Stored) -> None:
            flag = from_stored(after)
            assert flag is not None
            p.hset(key, name, flag.encode())

        return await self._mutate(f"flag:{name}", (key,), read, apply, after_of)

    async def flag(self, name: str) -> Flag:
        """One flag as stored now; UnknownFlag when there is none by that name."""
        name = parse_flag_name(name)
        raw = await self._call(lambda: self.redis.hget(self.keys.flags, name))
        if raw is None:
            raise UnknownFlag(f"flag {name!r} is not set: see `python -m proxy flag list`")
        return decode_flag(raw)
