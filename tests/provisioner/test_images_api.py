"""Snapshots and images through the adapter (provisioner/scale/do_api.py) against the
stand-in over HTTP, every request and answer checked against DigitalOcean's contract."""

from __future__ import annotations

import asyncio

import pytest

from provisioner.scale.do_api import DigitalOceanApi, DigitalOceanError
from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support.provisioner import TOKEN
from tests.support.wait import eventually


async def _active(api: DigitalOceanApi, droplet_id: int) -> bool:
    info = await asyncio.to_thread(api.get, droplet_id)
    return info is not None and info.status == "active"


def _create(api: DigitalOceanApi, name: str, image: str) -> int:
    return api.create(
        name=name, region="nyc3", size="s-1vcpu-1gb", image=image, ssh_keys=("1234",), tags=("switchyard",)
    )


async def test_snapshot_then_a_droplet_from_it_then_delete(fake_do: FakeDigitalOcean) -> None:
    api = DigitalOceanApi(TOKEN, fake_do.url, timeout_s=5, retries=1, backoff_s=0.01)
    built = await asyncio.to_thread(_create, api, "sy-image-build", "debian-12-x64")
    await eventually(lambda: _active(api, built), 10, "the build droplet to be active", interval_s=0.05)

    action = await asyncio.to_thread(api.snapshot, built, "sy-production-20261203")
    assert fake_do.images.actions[action]["_status"] == "in-progress"
    await asyncio.to_thread(api.wait_action, action, timeout_s=10, interval_s=0.05)
    image_id = await asyncio.to_thread(api.snapshot_id, built, "sy-production-20261203")
    assert image_id is not None and image_id in fake_do.images.images
    assert await asyncio.to_thread(api.snapshot_id, built, "another-name") is None

    from_image = await asyncio.to_thread(_create, api, "sy-prod-1", str(image_id))
    assert fake_do.droplets[from_image]["_image"] == image_id  # sent as a number, as the spec says
    assert ("POST", f"/v2/droplets/{built}/actions") in fake_do.calls

    assert await asyncio.to_thread(api.delete_image, image_id) is True
    assert await asyncio.to_thread(api.delete_image, image_id) is False
    assert fake_do.images.deleted == [image_id]
    with pytest.raises(DigitalOceanError, match="422"):
        await asyncio.to_thread(_create, api, "sy-prod-2", str(image_id))  # gone: refused


async def test_an_action_that_outlasts_its_deadline_is_named(fake_do: FakeDigitalOcean) -> None:
    api = DigitalOceanApi(TOKEN, fake_do.url, timeout_s=5, retries=1, backoff_s=0.01)
    fake_do.action_s = 30.0
    built = await asyncio.to_thread(_create, api, "sy-image-slow", "debian-12-x64")
    await eventually(lambda: _active(api, built), 10, "the build droplet to be active", interval_s=0.05)
    action = await asyncio.to_thread(api.snapshot, built, "slow")
    with pytest.raises(DigitalOceanError, match=f"action {action} still in progress"):
        await asyncio.to_thread(api.wait_action, action, timeout_s=0.3, interval_s=0.05)
