"""The orphan sweep destroys only what it can prove is its own leftover (nothing-lost #11, 3):
the rules as values, then against the stand-in DigitalOcean API after a Redis data loss."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from provisioner.app import Parts
from provisioner.scale.do_api import DigitalOceanApi
from provisioner.scale.orphans import IN_POOL, judge
from provisioner.scale.provider import Machine
from proxy.app import ProxyApp
from state import ServerRecord
from tests.provisioner.fake_do import FakeDigitalOcean
from tests.provisioner.test_droplets import droplet_parts
from tests.support.provisioner import FINGERPRINT, TOKEN, PartsFactory, provisioner_cli
from tests.support.proxy import proxy_config
from tests.support.sshd import SshServer
from tests.support.wait import eventually

NOW = 1_000_000.0
# The droplets' app port: no app runs there in these tests (nothing is configured).
APP_PORT = 8000
GRACE = 600.0


def machine(**changes: object) -> Machine:
    values: dict[str, object] = {
        "name": "sy-prod-1",
        "ref": "1",
        "address": "10.0.0.5",
        "port": 8000,
        "generation": "g1",
        "created_at": NOW - 3600,
    }
    values.update(changes)
    return Machine(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("m", "generation", "pooled", "kept"),
    [
        (machine(), "g1", (), ""),  # ours, old, in no pool: the one case the sweep destroys
        (machine(), "g1", ("http://10.0.0.5:8000",), IN_POOL),
        (machine(port=0), "g1", ("http://10.0.0.5:9999",), IN_POOL),  # port unknown: the host decides
        (machine(), "g1", ("http://10.0.0.5:9000", "http://10.0.0.6:8000"), ""),
        (machine(generation=""), "g1", (), "no generation tag"),
        (machine(), None, (), "the state has no generation"),
        (machine(), "g2", (), "made under generation g1, not the current g2"),
        (machine(created_at=0.0), "g1", (), "age is unknown"),
        (machine(created_at=NOW - 60), "g1", (), "younger than the grace period (60s < 600s)"),
    ],
)
def test_judge(m: Machine, generation: str | None, pooled: tuple[str, ...], kept: str) -> None:
    orphan = judge(m, generation=generation, pooled=pooled, now=NOW, grace_s=GRACE)
    assert (orphan.keep == "") == (kept == "")
    assert kept in orphan.keep


def backdate(fake: FakeDigitalOcean, droplet_id: int, seconds: float) -> None:
    fake.droplets[droplet_id]["created_at"] = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds)
    )


async def test_the_sweep_destroys_only_an_old_unpooled_droplet_of_the_current_generation(
    make_parts: PartsFactory, fake_do: FakeDigitalOcean, sshd: SshServer, tmp_path: Path
) -> None:
    parts = await droplet_parts(make_parts, fake_do, sshd, tmp_path, orphan_grace_s=GRACE)
    provider = parts.provisioner.provider
    current = (await parts.store.ensure_generation()).id
    api = DigitalOceanApi(TOKEN, fake_do.url, timeout_s=5, retries=0)

    async def make(name: str, generation: str, age_s: float) -> int:
        made = await provider.create(name, "production", generation=generation)
        backdate(fake_do, int(made.ref), age_s)
        return int(made.ref)

    leftover = await make("sy-prod-left", current, 3600)
    young = await make("sy-prod-young", current, 10)
    foreign = await make("sy-prod-foreign", "0123456789ab", 3600)
    untagged = await asyncio.to_thread(
        api.create,
        name="sy-prod-old",
        region="nyc3",
        size="s-1vcpu-1gb",
        image="ubuntu-24-04-x64",  # a base image: a numeric id must be a snapshot the stand-in holds
        ssh_keys=(),
        tags=("switchyard",),
    )
    backdate(fake_do, untagged, 3600)
    stranger = await asyncio.to_thread(
        api.create,
        name="their-db",
        region="nyc3",
        size="s-1vcpu-1gb",
        image="ubuntu-24-04-x64",  # a base image: a numeric id must be a snapshot the stand-in holds
        ssh_keys=(),
        tags=("someone",),
    )
    # A dead worker's record of a droplet half-way through provisioning: cleaned up as before.
    half = await make("sy-prod-dead", current, 3600)
    await parts.registry.put(
        ServerRecord(
            "sy-prod-dead",
            "production",
            "digitalocean",
            "provisioning",
            1.0,
            1.0,
            "dead",
            "configure",
            str(half),
        )
    )
    assert f"switchyard-gen-{current}" in fake_do.droplets[leftover]["tags"]

    done = await parts.provisioner.reconcile()

    assert sorted(done) == [
        "cleaned up sy-prod-dead (left provisioning at step configure by dead)",
        "destroyed orphan sy-prod-left",
    ]
    assert sorted(fake_do.destroyed) == sorted([leftover, half])
    assert sorted(fake_do.droplets) == sorted([young, foreign, untagged, stranger])
    kept = {o.machine.name: o.keep for o in await parts.provisioner.orphans()}
    assert set(kept) == {"sy-prod-young", "sy-prod-foreign", "sy-prod-old"} and all(kept.values())
    for droplet_id in (young, foreign, untagged, stranger):
        await asyncio.to_thread(api.destroy, droplet_id)


def cli_env(fake: FakeDigitalOcean, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "DIGITALOCEAN_"))}
    env.update(
        REDIS_URL=redis_url,
        DIGITALOCEAN_TOKEN=TOKEN,
        DIGITALOCEAN_END_POINT=fake.url,
        PROVISIONER_PROVIDER="digitalocean",
        PROVISIONER_DIGITALOCEAN_SSH_KEYS=FINGERPRINT,
        PROVISIONER_ORPHAN_GRACE_S="1",
        PROVISIONER_REMOTE_APP_PORT=str(APP_PORT),
    )
    return env


async def fleet(parts: Parts, fake: FakeDigitalOcean, count: int) -> list[ServerRecord]:
    """Droplets as a finished provisioning leaves them (created with its tags, recorded
    active, in their pool), without the Ansible run; each on its own address."""
    provider = parts.provisioner.provider
    generation = (await parts.store.ensure_generation()).id
    made = []
    for n in range(count):
        name = f"sy-prod-{n}"
        machine = await provider.create(name, "production", generation=generation)
        address = f"127.0.0.{10 + n}"
        fake.droplets[int(machine.ref)]["_public"] = address
        await provider.wait_active(machine, 10)
        backdate(fake, int(machine.ref), 3600)
        url = f"http://{address}:{APP_PORT}"
        record = ServerRecord(
            name,
            "production",
            "digitalocean",
            "active",
            1.0,
            1.0,
            "w",
            ref=machine.ref,
            address=address,
            url=url,
        )
        await parts.registry.put(record)
        await parts.store.add_backend("production", url)
        made.append(record)
    return made


async def test_after_a_redis_data_loss_the_sweep_destroys_nothing_and_adopt_brings_one_back(
    make_parts: PartsFactory, fake_do: FakeDigitalOcean, sshd: SshServer, tmp_path: Path, redis_url: str
) -> None:
    parts = await droplet_parts(
        make_parts, fake_do, sshd, tmp_path, orphan_grace_s=1, remote_app_port=APP_PORT
    )
    records = await fleet(parts, fake_do, 3)
    proxy = ProxyApp(proxy_config(redis_url, resync_interval_s=0.1))
    await proxy.start()
    try:
        assert len(proxy.snapshots.snapshot.production) == 3
        before = proxy.snapshots.generation
        await parts.redis.flushall()  # records, pools and generation gone
        await eventually(
            lambda: proxy.snapshots.generation not in (None, before) and not proxy.snapshots.state_lost,
            10,
            "the proxy to restore the state",
        )
        assert len((await parts.store.read_snapshot()).production) == 3  # the pools are back
        assert await parts.registry.all() == []  # the records are not

        assert await parts.provisioner.reconcile() == []
        assert fake_do.destroyed == [] and len(fake_do.droplets) == 3

        env = cli_env(fake_do, redis_url)
        code, out, err = await provisioner_cli("list", "--orphans", "--json", env=env, timeout_s=60)
        assert code == 0, err
        listed = {row["id"]: row for row in json.loads(out)}
        assert set(listed) == {r.id for r in records}
        assert all(row["kept"] and row["generation"] == before for row in listed.values())
        code, out, err = await provisioner_cli("list", "--orphans", env=env, timeout_s=60)
        assert code == 0 and out.count("kept:") == 3, err

        code, out, err = await provisioner_cli("adopt", "sy-prod-1", env=env, timeout_s=60)
        assert code == 0, err
        assert out.split("\t")[:3] == ["sy-prod-1", "production", records[1].url]
        adopted = await parts.registry.get("sy-prod-1")
        assert adopted is not None and adopted.state == "active" and adopted.url == records[1].url
        assert adopted.ref == records[1].ref
        code, out, err = await provisioner_cli("adopt", "sy-prod-1", env=env, timeout_s=60)
        assert code == 1 and "not an orphan" in err

        # A pooled orphan is not destroyed by hand either, until it leaves the pool.
        code, _, err = await provisioner_cli("destroy", "sy-prod-2", env=env, timeout_s=60)
        assert code == 1 and "is in a pool" in err
        await parts.store.remove_backend("production", records[2].url)
        code, out, err = await provisioner_cli("destroy", "sy-prod-2", env=env, timeout_s=60)
        assert code == 0 and out.strip().endswith("destroyed"), err
        assert fake_do.destroyed == [int(records[2].ref)]
        code, _, err = await provisioner_cli("destroy", "sy-prod-1", env=env, timeout_s=60)
        assert code == 1 and "is managed" in err
        assert "Traceback" not in err
    finally:
        await proxy.stop()


async def test_a_worker_on_another_key_prefix_destroys_nothing_of_the_first_ones(
    make_parts: PartsFactory, fake_do: FakeDigitalOcean, sshd: SshServer, tmp_path: Path
) -> None:
    parts = await droplet_parts(
        make_parts, fake_do, sshd, tmp_path, orphan_grace_s=1, remote_app_port=APP_PORT
    )
    await fleet(parts, fake_do, 3)
    other = await droplet_parts(
        make_parts, fake_do, sshd, tmp_path, orphan_grace_s=1, key_prefix="other:", remote_app_port=APP_PORT
    )
    await other.store.ensure_generation()  # its own state, with its own generation

    assert await other.provisioner.reconcile() == []
    assert fake_do.destroyed == [] and len(fake_do.droplets) == 3
    kept = await other.provisioner.orphans()
    assert len(kept) == 3 and all("not the current" in o.keep for o in kept)
