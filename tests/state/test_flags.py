"""Flag rules: validation by value, and writes through the audited path of a real Redis."""

from __future__ import annotations

import pytest

from state import InvalidValue, StateStore
from state.flags import Flag, decode_flag, parse_percent, parse_variants
from state.flagstore import FlagStore, UnknownFlag


def test_a_percentage_is_a_whole_percent_0_to_100() -> None:
    assert parse_percent(0) == 0 and parse_percent("100") == 100
    for bad in (130, -1, "130", "ten", 10.5, True, None):
        with pytest.raises(InvalidValue, match="0-100"):
            parse_percent(bad)


def test_variants_are_named_weights_adding_up_to_100_in_the_order_given() -> None:
    assert parse_variants("b=60, a=40") == (("b", 60), ("a", 40))
    assert parse_variants({"a": 50, "b": 50}) == (("a", 50), ("b", 50))
    with pytest.raises(InvalidValue, match="add up to 90, not 100"):
        parse_variants("a=50,b=40")
    with pytest.raises(InvalidValue, match="no weight"):
        parse_variants("a,b=100")
    with pytest.raises(InvalidValue, match="twice"):
        parse_variants("a=50,a=50")
    with pytest.raises(InvalidValue, match="2 to 32"):
        parse_variants("a=100")
    with pytest.raises(InvalidValue, match="reserved"):
        parse_variants("on=50,b=50")
    with pytest.raises(InvalidValue, match="name"):
        parse_variants("a b=50,c=50")


def test_stored_values_old_and_new_decode_and_encode_back() -> None:
    assert decode_flag("1") == Flag(on=True) and decode_flag("0") == Flag(on=False)
    assert Flag(on=True).encode() == "1"
    rule = Flag(on=True, percent=10)
    assert decode_flag(rule.encode()) == rule
    split = Flag(on=False, variants=(("b", 70), ("a", 30)))
    assert decode_flag(split.encode()) == split
    # Hand-written junk reads as off, as any value but "1" always did.
    for junk in ("yes", "[1]", '{"on": "yes"}', '{"on": true, "percent": 130}'):
        assert decode_flag(junk) == Flag(on=False)


def test_the_boolean_view_is_on_only_for_flags_on_for_everyone() -> None:
    assert Flag(on=True).on_for_everyone and Flag(on=True, percent=100).on_for_everyone
    assert not Flag(on=True, percent=99).on_for_everyone
    assert not Flag(on=True, variants=(("a", 50), ("b", 50))).on_for_everyone


async def test_a_rule_is_written_audited_and_read_back_in_the_snapshot(store: StateStore) -> None:
    flags = FlagStore.of(store)
    change = await flags.set_flag_rule("checkout", percent=10)
    assert change.changed and change.before is None and change.after == {"on": True, "percent": 10}
    await flags.set_flag_rule("theme", variants=parse_variants("dark=50,light=50"))
    snap = await store.read_snapshot()
    assert snap.flag_rules["checkout"] == Flag(on=True, percent=10)
    assert snap.flag_rules["theme"].variants == (("dark", 50), ("light", 50))
    assert dict(snap.flags) == {"checkout": False, "theme": False}
    entry = (await store.audit_log(1))[0]
    assert (entry.what, entry.before, entry.after, entry.who) == (
        "flag:theme",
        None,
        {"on": True, "variants": {"dark": 50, "light": 50}},
        "test",
    )


async def test_the_switch_keeps_the_rule_and_a_new_rule_keeps_the_switch(store: StateStore) -> None:
    flags = FlagStore.of(store)
    await flags.set_flag_rule("checkout", percent=10)
    off = await store.set_flag("checkout", False)
    assert off.before == {"on": True, "percent": 10} and off.after == {"on": False, "percent": 10}
    await flags.set_flag_rule("checkout", percent=20)
    assert await flags.flag("checkout") == Flag(on=False, percent=20)
    await store.set_flag("checkout", True)
    assert await flags.flag("checkout") == Flag(on=True, percent=20)
    # An old plain flag stays "1"/"0" in Redis.
    await store.set_flag("beta", True)
    assert await store.redis.hget(store.keys.flags, "beta") == "1"


async def test_an_unchanged_rule_writes_nothing(store: StateStore) -> None:
    flags = FlagStore.of(store)
    await flags.set_flag_rule("checkout", percent=10)
    version = (await store.read_snapshot()).version
    again = await flags.set_flag_rule("checkout", percent=10)
    assert not again.changed and (await store.read_snapshot()).version == version


async def test_an_unknown_flag_and_a_rule_with_both_kinds_are_refused(store: StateStore) -> None:
    flags = FlagStore.of(store)
    with pytest.raises(UnknownFlag, match="'nope' is not set"):
        await flags.flag("nope")
    with pytest.raises(InvalidValue, match="not both"):
        await flags.set_flag_rule("x", percent=10, variants=(("a", 50), ("b", 50)))
    assert (await store.read_snapshot()).version == 0
