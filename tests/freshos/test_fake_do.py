"""The stand-in DigitalOcean API with fresh-OS droplets: python-digitalocean creates one
over HTTP, it stays `new` until a real OS has booted, then its public address is that
machine's and root logs in there; deleting it powers the machine off and removes it."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import digitalocean
import pytest

from tests.freshos.conftest import TOKEN, Booted
from tests.freshos.droplet import DropletError
from tests.provisioner.fake_do import FakeDigitalOcean

pytestmark = pytest.mark.freshos

FINGERPRINT = "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"


@dataclass
class Gated:
    """Holds each boot until the test opens the gate, so `new` is seen for certain."""

    inner: Booted
    gate: threading.Event

    def boot(self, name: str) -> tuple[str, str]:
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return self.inner.boot(name)

    def destroy(self, name: str) -> None:
        self.inner.destroy(name)


def load(url: str, droplet_id: int) -> Any:
    droplet = digitalocean.Droplet(token=TOKEN, end_point=url, id=droplet_id)
    droplet.load()
    return droplet


async def test_create_boots_a_fresh_os_and_delete_removes_it(
    fresh_do: FakeDigitalOcean, booted: Booted
) -> None:
    gate = threading.Event()
    fresh_do.booter = Gated(booted, gate)
    created = digitalocean.Droplet(
        token=TOKEN,
        end_point=fresh_do.url,
        name="fresh-api",
        region="nyc3",
        size_slug="s-1vcpu-1gb",
        image="debian-12-x64",
        ssh_keys=[FINGERPRINT],
        tags=["switchyard"],
    )
    await asyncio.to_thread(created.create)

    waiting = await asyncio.to_thread(load, fresh_do.url, created.id)
    assert (waiting.status, waiting.networks["v4"]) == ("new", [])
    gate.set()
    deadline = time.monotonic() + 60
    while (droplet := await asyncio.to_thread(load, fresh_do.url, created.id)).status != "active":
        assert time.monotonic() < deadline, "the droplet never became active"
        await asyncio.sleep(0.2)  # polling the API as the provisioner does

    machine = booted.droplets["fresh-api"]
    public = {n["type"]: n["ip_address"] for n in droplet.networks["v4"]}["public"]
    assert public == machine.ip and public.startswith("10.231.")
    login = await asyncio.to_thread(machine.ssh, "hostname; cat /proc/1/comm")
    assert login.stdout.split() == ["fresh-api", "systemd"], login.stderr

    await asyncio.to_thread(created.destroy)

    assert fresh_do.droplets == {} and fresh_do.destroyed == [created.id]
    assert booted.droplets == {} and not machine.home.exists()
    with pytest.raises(DropletError, match="refusing"):  # its veth is gone with it
        machine.check_route()
