"""A prepared image on fresh-OS droplets, end to end through the CLI.

`image build` configures a droplet from the base, snapshots it through the stand-in's
snapshot action (a copy of its root filesystem), records the image and destroys the
droplet; the image holds neither the Redis password nor the build server's release.
`up` then creates a droplet from that image id, and its Ansible run skips the host setup
baked in (packages, users, code, virtualenv) but still writes this server's firewall,
units and monitor, which reports to Redis under the new server's name. `image forget`
deletes the snapshot. Timing is bench/scaleup.py's business, not this test's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from state import HostStore, KeySpace, ServerRegistry, connect
from state.images import ImageStore
from tests.freshos.conftest import Booted
from tests.freshos.scaleup import APP_PORT, PROXY_ADDRESS, world
from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support.wait import eventually

pytestmark = pytest.mark.freshos

BAKED_IN = (
    "app | install the system packages",
    "app | create the app's user",
    "common | install the system packages",
    "common | create the switchyard user",
    "common | copy Switchyard's code",
    "common | install Switchyard's requirements into its virtualenv",
)
PER_SERVER = (
    "app | write the firewall's rules",
    "app | load the firewall, and at every boot",
    "app | install the app's and the firewall's systemd units",
    "common | write the services' environment file",
    "monitor | install the monitor's systemd unit",
    "monitor | enable and start the monitor",
)


@pytest.mark.timeout(1200)
async def test_image_build_then_a_server_from_it_then_forget(
    fresh_do: FakeDigitalOcean, booted: Booted, tmp_path: Path
) -> None:
    async with world(tmp_path, booted, fresh_do) as w:
        code, out, err = await w.provisioner("image", "build", "--pool", "production")
        assert code == 0, f"image build failed ({code}):\n{out}\n{err[-6000:]}"
        pool, image_id, name, steps = out.strip().split("\t")
        assert pool == "production" and int(image_id) in fresh_do.images.images, out
        assert "snapshot=" in steps and "generalise=" in steps
        assert booted.droplets == {} and len(fresh_do.destroyed) == 1  # the build droplet is gone
        client = connect(w.redis.url)
        try:
            assert await ServerRegistry(client, KeySpace()).all() == []
            [recorded] = await ImageStore(client, KeySpace()).all()
            assert (recorded.pool, recorded.image_id, recorded.name) == ("production", image_id, name)
            code, shown, _ = await w.provisioner("image", "show", "--json")
            assert code == 0 and json.loads(shown)["image_id"] == image_id
            # Generalised: no secret and no release of the build server's in the image.
            layer = booted.images / image_id
            assert not (layer / "etc/switchyard/switchyard.env").exists()
            assert not (layer / "srv/switchyard").exists() or list((layer / "srv/switchyard").iterdir()) == []
            assert (layer / "opt/switchyard/.venv/bin/python").exists()
            password = w.redis.password.encode()
            assert [p for p in layer.rglob("*") if p.is_file() and password in p.read_bytes()] == []

            code, out, err = await w.provisioner("up", "--pool", "production")
            assert code == 0, f"provisioner up failed ({code}):\n{out}\n{err[-6000:]}"
            server_id, url = out.strip().split("\t")
            [droplet_id] = [i for i, d in fresh_do.droplets.items() if d["name"] == server_id]
            assert fresh_do.droplets[droplet_id]["_image"] == int(image_id)
            tasks = w.last_run_tasks()
            assert {t: tasks.get(t) for t in BAKED_IN} == dict.fromkeys(BAKED_IN, "skipped")
            assert [t for t in PER_SERVER if tasks.get(t) in (None, "skipped", "failed")] == []
            droplet = booted.droplets[server_id]
            assert url == f"http://{droplet.ip}:{APP_PORT}"
            ruleset = droplet.ssh("nft list table inet switchyard_app").stdout
            assert PROXY_ADDRESS in ruleset and droplet.host_ip in ruleset, ruleset
            hosts = HostStore(client, KeySpace())
            await eventually(
                lambda: _reported(hosts, server_id), 60, "the new server's monitor in Redis", interval_s=0.5
            )
            record = await w.record(server_id)
            print(f"\nfrom image {image_id}: " + " ".join(f"{k}={v:.1f}s" for k, v in record.timings.items()))

            code, out, err = await w.provisioner("image", "forget", "--pool", "production")
            assert code == 0 and "snapshot deleted" in out, out + err
            assert fresh_do.images.deleted == [int(image_id)] and not layer.exists()
            assert await ImageStore(client, KeySpace()).all() == []
            code, out, err = await w.provisioner("image", "forget", "--pool", "production")
            assert code == 0 and "nothing to forget" in out
        finally:
            await client.aclose()


async def _reported(hosts: HostStore, name: str) -> bool:
    return any(sample.host == name for sample in await hosts.hosts())
