"""Image records on a real redis-server: one per pool, replaced, forgotten, audited."""

from __future__ import annotations

import json

import pytest

from state import InvalidValue, KeySpace, connect
from state.images import ImageRecord, ImageStore


async def test_one_image_per_pool_replaced_and_forgotten(redis_url: str) -> None:
    client = connect(redis_url)
    images = ImageStore(client, KeySpace(), actor="test")
    first = ImageRecord("production", "7001", "sy-production-1", 1700000000.0, release="v1-abcdef12")
    assert await images.get("production") is None
    assert await images.put(first) is None
    second = ImageRecord("production", "7003", "sy-production-2", 1700000100.0)
    assert await images.put(second) == first
    await images.put(ImageRecord("staging", "7005", "sy-staging-1", 1700000200.0))
    assert [r.image_id for r in await images.all()] == ["7003", "7005"]
    assert await images.remove("production") == second
    assert await images.remove("production") is None
    assert await images.get("production") is None
    entries = await client.xrange(KeySpace().audit)
    whats = [e[1]["what"] for e in entries]
    assert whats == [
        "image:production",
        "image:production",
        "image:staging",
        "image:production",
        "image:production",
    ]
    assert json.loads(entries[1][1]["before"])["image_id"] == "7001"
    await client.aclose()


async def test_an_unreadable_record_is_named(redis_url: str) -> None:
    client = connect(redis_url)
    await client.hset(KeySpace().images, "production", "{not json")
    with pytest.raises(InvalidValue, match="unreadable image record"):
        await ImageStore(client, KeySpace()).get("production")
    await client.aclose()
