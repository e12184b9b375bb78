"""A prepared image on fresh-OS droplets, end to end through the CLI.

`image build` configures a droplet from the base, snapshots it through the stand-in's
snapshot action (a copy of its root filesystem), records the image and destroys the
droplet; the image holds no secret (neither the Redis password nor the app's environment
file) but keeps the build server's deploy root, release and all, under
/srv/switchyard/.image. `up` then creates a droplet from that image id, whose Ansible run
skips the host setup baked in (packages, users, code, virtualenv), adopts that root as
its own (its links and virtualenv scripts name the new server's path) and so builds no
release, but still writes this server's firewall, units and monitor, which reports to
Redis under the new server's name. `image forget` deletes the snapshot. Timing is
bench/scaleup.py's business, not this test's.
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

# What the image holds is skipped by one include each: their tasks are not even listed.
BAKED_IN = (
    "app | install the system packages, the app's user and the system folders",
    "common | install Switchyard's code, its virtualenv and what they need",
)
NOT_EVEN_LISTED = (
    "app | install the system packages",
    "app | create the app's user",
    "common | install the system packages",
    "common | create the switchyard user",
    "common | copy Switchyard's code",
    "common | install Switchyard's requirements into its virtualenv",
)
# The image's release is live once adopted: nothing is built, checked or switched to.
RELEASE_STEPS = (
    "app | build the release beside the live one",
    "app | swap the current link to the release and restart the app",
)
PER_SERVER = (
    "app | adopt the deploy root and release a prepared image keeps",
    "app | write the firewall's rules",
    "app | install the app's and the firewall's systemd units",
    "app | load the firewall and start the app, and at every boot, at once",
    "common | write the services' environment file",
    "monitor | install the monitor's systemd unit",
    "monitor | enable and start the monitor, on a server from an image",
)
# What a server from an image starts with one systemctl call each instead (no
# systemd_service module loaded on the host: its first use costs 0.3-0.5 s).
STARTED_AT_ONCE = (
    "app | load the firewall, and at every boot",
    "app | keep the app running, and start it at every boot",
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
            # Generalised: no secret in the image, and the build server's root kept aside.
            layer = booted.images / image_id
            assert not (layer / "etc/switchyard/switchyard.env").exists()
            kept = layer / "srv/switchyard/.image"
            assert (kept / "ORIGIN").read_text().strip().startswith("/srv/switchyard/")
            assert not (kept / "shared/.env").exists() and list((kept / "shared").glob("*.pid")) == []
            [image_release] = (kept / "releases").iterdir()
            assert [p.name for p in (layer / "srv/switchyard").iterdir()] == [".image"]
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
            assert [t for t in NOT_EVEN_LISTED if t in tasks] == []
            assert [t for t in PER_SERVER if tasks.get(t) in (None, "skipped", "failed")] == []
            assert [t for t in RELEASE_STEPS if tasks.get(t) not in (None, "skipped")] == []
            assert {t: tasks.get(t) for t in STARTED_AT_ONCE} == dict.fromkeys(STARTED_AT_ONCE, "skipped")
            # The monitor it just started reads its new files: no restart on top.
            assert tasks.get("monitor | restart") in (None, "skipped"), tasks
            droplet = booted.droplets[server_id]
            root = f"/srv/switchyard/{server_id}"
            adopted = droplet.ssh(
                f"readlink {root}/current {root}/ports/{APP_PORT}; head -n1 {root}/current/venv/bin/pip;"
                f" ls -A /srv/switchyard; test ! -e {root}/ORIGIN && echo no-origin"
            ).stdout.split()
            release = f"{root}/releases/{image_release.name}"
            assert adopted == [release, release, f"#!{release}/venv/bin/python3", server_id, "no-origin"]
            # The deploy side sees the adopted root as any other: its release live on the port.
            code, listed, err = await w.provisioner("releases", "--env", "production", "--json")
            assert code == 0, err[-4000:]
            report = json.loads(listed)["servers"][server_id]
            assert (report["current"], report["ports"]) == (
                image_release.name,
                {str(APP_PORT): image_release.name},
            ), report
            assert url == f"http://{droplet.ip}:{APP_PORT}"
            ruleset = droplet.ssh("nft list table inet switchyard_app").stdout
            assert PROXY_ADDRESS in ruleset and droplet.host_ip in ruleset, ruleset
            # Started at once, and at every boot too.
            units = f"switchyard-firewall switchyard-app@{APP_PORT} switchyard-monitor"
            states = droplet.ssh(f"systemctl is-enabled {units}; systemctl is-active {units}").stdout.split()
            assert states == ["enabled"] * 3 + ["active"] * 3, states
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
