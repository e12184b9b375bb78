"""Previews in Redis: the record, its validation, the writes every proxy hears of."""

from __future__ import annotations

import json

import pytest

from state import InvalidValue, StateStore
from state.previews import Preview, decode_previews, parse_preview_name, routes_of
from state.previewstore import PreviewStore, UnknownPreview

FEATURE = Preview(
    backends=("http://127.0.0.1:9101",), kind="branch", sha="a" * 40, branch="feature/x", touched_at=5.0
)


@pytest.mark.parametrize(("raw", "name"), [("feature-x", "feature-x"), ("A1B2C3D", "a1b2c3d"), ("x", "x")])
def test_a_preview_name_is_one_lower_case_dns_label(raw: str, name: str) -> None:
    assert parse_preview_name(raw) == name


@pytest.mark.parametrize("raw", ["", "-x", "x-", "a.b", "feature/x", "x" * 64, "ünï", "a b"])
def test_a_name_that_is_not_one_label_is_refused_with_the_accepted_form(raw: str) -> None:
    with pytest.raises(InvalidValue, match="1-63 letters, digits and hyphens"):
        parse_preview_name(raw)


def test_a_record_round_trips_and_its_backends_are_canonical() -> None:
    assert Preview.decode(FEATURE.encode()) == FEATURE
    raw = json.dumps({"backends": ["http://127.0.0.1:9102/", "http://localhost"]})
    assert Preview.decode(raw) == Preview(backends=("http://127.0.0.1:9102", "http://localhost:80"))


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"backends": "http://a:1"}',
        '{"backends": ["ftp://a:1"]}',
        '{"backends": [], "kind": "x"}',
    ],
)
def test_an_unreadable_record_is_left_out_so_its_host_answers_404(raw: str) -> None:
    with pytest.raises(InvalidValue):
        Preview.decode(raw)
    found = decode_previews({"bad": raw, "good": FEATURE.encode(), "Bad.Name": FEATURE.encode()})
    assert dict(routes_of(found)) == {"good": FEATURE.backends}


async def test_a_published_preview_is_in_the_snapshot_versioned_audited_and_notified(
    store: StateStore,
) -> None:
    previews = PreviewStore.of(store)
    before = (await store.read_snapshot()).version
    async with store.redis.pubsub() as pubsub:
        await pubsub.subscribe(store.keys.changes)
        change = await previews.put_preview("Feature-X", FEATURE)
        assert change.changed and change.what == "preview:feature-x"
        notices: list[dict[str, object]] = []
        while len(notices) < 2:  # the subscription itself, then the change
            message = await pubsub.get_message(timeout=5)
            assert message is not None, "no change notice"
            notices.append(message)
    assert notices[-1]["data"] == "preview:feature-x"
    snap = await store.read_snapshot()
    assert snap.version == before + 1
    assert dict(snap.previews) == {"feature-x": ("http://127.0.0.1:9101",)}
    assert snap.to_json()["previews"] == {"feature-x": ["http://127.0.0.1:9101"]}
    assert await previews.preview("feature-x") == FEATURE
    [entry] = await store.audit_log(1)
    assert entry.what == "preview:feature-x" and entry.before is None
    assert isinstance(entry.after, dict) and entry.after["sha"] == "a" * 40


async def test_a_redeploy_keeps_created_at_and_moves_touched_at(store: StateStore) -> None:
    previews = PreviewStore.of(store)
    await previews.put_preview(
        "feature-x", Preview(FEATURE.backends, "branch", created_at=1.0, touched_at=1.0)
    )
    await previews.put_preview(
        "feature-x", Preview(("http://127.0.0.1:9103",), "branch", created_at=9.0, touched_at=9.0)
    )
    got = await previews.preview("feature-x")
    assert (got.created_at, got.touched_at, got.backends) == (1.0, 9.0, ("http://127.0.0.1:9103",))
    # The same record again changes nothing: no version bump, no audit entry.
    version = (await store.read_snapshot()).version
    assert not (await previews.put_preview("feature-x", got)).changed
    assert (await store.read_snapshot()).version == version


async def test_a_removed_preview_is_gone_from_the_snapshot(store: StateStore) -> None:
    previews = PreviewStore.of(store)
    await previews.put_preview("feature-x", FEATURE)
    assert (await previews.remove_preview("feature-x")).changed
    assert dict((await store.read_snapshot()).previews) == {}
    assert not (await previews.remove_preview("feature-x")).changed
    with pytest.raises(UnknownPreview, match="no preview named 'feature-x'"):
        await previews.preview("feature-x")


async def test_a_preview_without_backends_is_refused_and_nothing_written(store: StateStore) -> None:
    with pytest.raises(InvalidValue, match="has no backends"):
        await PreviewStore.of(store).put_preview("feature-x", Preview(backends=()))
    assert await store.redis.exists(store.keys.previews) == 0


async def test_a_restore_brings_previews_back_and_a_reset_removes_them(store: StateStore) -> None:
    previews = PreviewStore.of(store)
    await previews.put_preview("feature-x", FEATURE)
    snap = await store.read_snapshot()
    held = await store.generation()
    assert held is not None
    await store.redis.flushall()
    assert (await store.restore(snap, held.id)).changed
    assert dict((await store.read_snapshot()).previews) == {"feature-x": FEATURE.backends}
    await store.reset()
    assert dict((await store.read_snapshot()).previews) == {}
