"""The state's generation: created with the state, restored after a loss, reset on purpose."""

from __future__ import annotations

import asyncio

import pytest

from state import Alert, Generation, KeySpace, Snapshot, StateStore
from state.flags import Flag
from state.flagstore import FlagStore
from state.generation import decode_generation, verdict


def gen(cause: str, gid: str = "g2") -> Generation:
    return Generation(id=gid, cause=cause, by="x", at=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("held", "found", "expected"),
    [
        (None, None, "follow"),  # a first start: nothing was ever written
        (None, gen("created"), "follow"),
        ("g1", None, "restore"),  # the state vanished
        ("g1", gen("created", "g1"), "follow"),
        ("g1", gen("created"), "restore"),  # a write re-created it from nothing after a loss
        ("g1", gen("restored"), "follow"),  # another proxy restored it
        ("g1", gen("reset"), "follow"),  # a deliberate fresh start
    ],
)
def test_verdict(held: str | None, found: Generation | None, expected: str) -> None:
    assert verdict(held, found) == expected


def test_an_unreadable_generation_is_never_taken_for_a_missing_one() -> None:
    assert decode_generation(None) is None
    odd = decode_generation('{"id": 1')
    assert odd is not None and odd.cause == "created"
    assert Generation.decode(gen("reset").encode()) == gen("reset")


async def _populate(store: StateStore) -> Snapshot:
    await store.add_backend("production", "http://127.0.0.1:9001")
    await store.add_backend("staging", "http://127.0.0.1:9002")
    await store.set_weight(40)
    await store.set_flag("disableSET", True)
    await store.set_flag_routes("beta", ["/beta"])
    await store.set_alert("high cpu")
    return await store.read_snapshot()


def _content(snap: Snapshot) -> dict[str, object]:
    body = snap.to_json()
    body.pop("version")
    return body


async def test_the_first_write_creates_the_generation_and_later_ones_keep_it(store: StateStore) -> None:
    assert (await store.read_state()).generation is None
    await store.set_weight(10)
    first = await store.generation()
    assert first is not None and first.cause == "created" and first.by == "test"
    await store.set_weight(20)
    assert await store.generation() == first
    assert await store.ensure_generation() == first


async def test_ensure_generation_on_an_empty_state_writes_one(store: StateStore) -> None:
    made = await store.ensure_generation()
    assert made.cause == "created" and await store.generation() == made
    assert len(made.id) == 12 and made.id.isalnum() and made.id.islower()


async def test_a_restore_writes_the_snapshot_back_under_a_new_generation(store: StateStore) -> None:
    snap = await _populate(store)
    held = await store.generation()
    assert held is not None
    await store.redis.flushall()

    change = await store.restore(snap, held.id)
    assert change.changed and change.what == "restore"
    state = await store.read_state()
    assert _content(state.snapshot) == _content(snap)
    assert state.snapshot.version == snap.version + 1  # onwards, never back
    assert state.generation is not None and state.generation.cause == "restored"
    assert state.generation.id != held.id
    [entry] = await store.audit_log(1)
    assert entry.what == "restore" and entry.who == "test"
    assert isinstance(entry.after, dict) and entry.after["from"] == held.id


async def test_a_restore_keeps_what_a_write_made_after_the_loss(store: StateStore) -> None:
    snap = await _populate(store)
    held = await store.generation()
    assert held is not None
    await store.redis.flushall()
    await store.add_backend("production", "http://127.0.0.1:9003")  # creates a generation
    await store.set_weight(100)

    assert (await store.restore(snap, held.id)).changed
    got = await store.read_snapshot()
    assert got.production == ("http://127.0.0.1:9001", "http://127.0.0.1:9003")
    assert got.weight == 100 and got.alert == snap.alert and got.flags == snap.flags


async def test_two_proxies_restoring_at_once_restore_exactly_once(store: StateStore) -> None:
    snap = await _populate(store)
    held = await store.generation()
    assert held is not None
    await store.redis.flushall()
    others = [StateStore(store.redis, store.keys, actor=f"proxy:{n}") for n in range(8)]
    changes = await asyncio.gather(*(s.restore(snap, held.id) for s in others))
    assert sum(c.changed for c in changes) == 1
    entries = [e for e in await store.audit_log(100) if e.what == "restore"]
    assert len(entries) == 1
    # And the one that did not restore sees the state it would adopt.
    assert _content(await store.read_snapshot()) == _content(snap)


async def test_a_restore_over_a_restored_state_changes_nothing(store: StateStore) -> None:
    snap = await _populate(store)
    held = await store.generation()
    assert held is not None
    await store.redis.flushall()
    assert (await store.restore(snap, held.id)).changed
    stale = Snapshot(production=("http://127.0.0.1:1",), alert=Alert("x", "y", 1.0))
    assert not (await store.restore(stale, held.id)).changed
    assert (await store.read_snapshot()).production == snap.production


async def test_a_reset_empties_the_state_under_a_reset_generation(store: StateStore) -> None:
    snap = await _populate(store)
    change = await store.reset()
    assert change.changed
    state = await store.read_state()
    assert _content(state.snapshot) == _content(Snapshot())
    assert state.snapshot.version == snap.version + 1
    assert state.generation is not None and state.generation.cause == "reset"
    [entry] = await store.audit_log(1)
    assert entry.what == "reset" and isinstance(entry.before, dict)
    assert entry.before["snapshot"]["pools"]["production"] == list(snap.production)


async def test_generations_are_per_key_prefix(store: StateStore) -> None:
    other = StateStore(store.redis, KeySpace("other:"), actor="test")
    await store.set_weight(10)
    assert await other.generation() is None
    assert (await other.ensure_generation()) != await store.generation()


async def test_a_restore_keeps_each_flags_rule_not_only_whether_it_is_on(store: StateStore) -> None:
    flags = FlagStore(store.redis, store.keys, actor="test")
    await flags.set_flag_rule("ramp", percent=10)
    await flags.set_flag_rule("theme", variants=(("dark", 30), ("light", 70)))
    await store.set_flag("plain", True)
    snap = (await store.read_state()).snapshot
    held = await store.generation()
    assert held is not None
    await store.redis.flushall()

    await store.restore(snap, held.id)
    restored = (await store.read_state()).snapshot
    assert restored.flag_rules["ramp"] == Flag(on=True, percent=10)
    assert restored.flag_rules["theme"] == Flag(on=True, variants=(("dark", 30), ("light", 70)))
    assert restored.flag_rules["plain"] == Flag(on=True)
