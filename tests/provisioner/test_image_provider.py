"""Prepared images without a fresh OS: the provider creating a pool's droplets from its
image (and from the base when the image is refused), and `python -m provisioner image`
as a child process: bad input, show and forget against Redis and the stand-in API."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from provisioner.scale.do_api import DigitalOceanApi
from provisioner.scale.droplets import DigitalOceanProvider, DropletSettings
from state import DeployRecord, DeployStore, KeySpace, ServerRegistry, connect
from state.images import ImageRecord, ImageStore
from state.model import PoolName
from tests.provisioner.fake_do import FakeDigitalOcean
from tests.provisioner.test_cli import clean_env, cli
from tests.support.provisioner import TOKEN
from tests.support.wait import eventually

SETTINGS = DropletSettings(
    region="nyc3",
    size="s-1vcpu-1gb",
    image="debian-12-x64",
    ssh_keys=("1234",),
    owner_tag="switchyard",
    tags=(),
    address="public",
    ssh_user="root",
    ssh_port=22,
    ssh_private_key_file="",
    remote_python="/usr/bin/python3",
    app_dir="/srv/switchyard",
    app_port=8000,
    app_listen_host="0.0.0.0",
    install_deps=True,
    poll_interval_s=0.05,
)


async def _image(fake_do: FakeDigitalOcean, api: DigitalOceanApi) -> str:
    provider = DigitalOceanProvider(api, SETTINGS)
    built = await provider.create("sy-img-prod-1", "production", generation="g1")
    await provider.wait_active(built, 10)
    action = await asyncio.to_thread(api.snapshot, int(built.ref), "sy-production-1")
    await asyncio.to_thread(api.wait_action, action, timeout_s=10, interval_s=0.05)
    return str(await asyncio.to_thread(api.snapshot_id, int(built.ref), "sy-production-1"))


async def test_a_pools_droplets_start_from_its_image(fake_do: FakeDigitalOcean) -> None:
    api = DigitalOceanApi(TOKEN, fake_do.url, timeout_s=5, retries=1, backoff_s=0.01)
    image_id = await _image(fake_do, api)
    recorded: dict[str, str | None] = {"production": image_id, "staging": None}

    async def image_of(pool: PoolName) -> str | None:
        return recorded[pool]

    provider = DigitalOceanProvider(api, SETTINGS, image_of)
    prod = await provider.create("sy-prod-1", "production", generation="g1")
    staging = await provider.create("sy-stag-1", "staging", generation="g1")
    assert fake_do.droplets[int(prod.ref)]["_image"] == int(image_id) and prod.image == image_id
    assert fake_do.droplets[int(staging.ref)]["_image"] == "debian-12-x64" and staging.image == ""
    assert provider.host_vars(prod)["switchyard_from_image"] is True
    assert "switchyard_from_image" not in provider.host_vars(staging)

    # Deleted behind the provisioner's back: the pool still grows, from the base image.
    await asyncio.to_thread(api.delete_image, int(image_id))
    again = await provider.create("sy-prod-2", "production", generation="g1")
    assert fake_do.droplets[int(again.ref)]["_image"] == "debian-12-x64" and again.image == ""


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["image", "build"], {}, "error: image build needs --pool production or --pool staging"),
        (
            ["image", "build", "--pool", "canary"],
            {},
            "error: unknown pool 'canary': use production or staging",
        ),
        (
            ["image", "forget", "--pool", "production"],
            {},
            "error: image forget needs the digitalocean provider",
        ),
        (
            ["image", "build", "--pool", "production", "--snapshot-timeout-s", "0"],
            {"DIGITALOCEAN_TOKEN": TOKEN},
            "error: --snapshot-timeout-s 0.0: give a positive number of seconds",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], env: dict[str, str], message: str) -> None:
    done = cli(*args, env=clean_env(REDIS_URL="redis://127.0.0.1:1/0", **env))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    assert TOKEN not in done.stderr + done.stdout


async def test_show_and_forget(redis_url: str, fake_do: FakeDigitalOcean) -> None:
    api = DigitalOceanApi(TOKEN, fake_do.url, timeout_s=5, retries=1, backoff_s=0.01)
    image_id = await _image(fake_do, api)
    env = clean_env(REDIS_URL=redis_url, DIGITALOCEAN_TOKEN=TOKEN, DIGITALOCEAN_END_POINT=fake_do.url)
    done = await asyncio.to_thread(cli, "image", "show", env=env)
    assert done.returncode == 0 and done.stdout.startswith("no prepared image"), done.stderr
    client = connect(redis_url)
    try:
        record = ImageRecord("production", image_id, "sy-production-1", 1764720000.0, release="v1")
        await ImageStore(client, KeySpace(), actor="test").put(record)
        done = await asyncio.to_thread(cli, "image", "show", env=env)
        assert done.stdout.split("\t") == [
            "production",
            image_id,
            "sy-production-1",
            "2025-12-03T00:00:00Z",
            "v1",
            "no deploy on record\n",
        ]
        # A deploy since the build: a server from the image builds that release, and show says so.
        live = "1a2b3c4d" * 5
        await DeployStore(client, KeySpace()).record(
            DeployRecord("production", "deploy", live, "succeeded", "test", 1764720100.0)
        )
        done = await asyncio.to_thread(cli, "image", "show", env=env)
        assert done.stdout.split("\t")[-1] == "behind: 1a2b3c4d is live, rebuild it\n", done.stdout
        done = await asyncio.to_thread(cli, "image", "show", "--json", "--pool", "production", env=env)
        assert json.loads(done.stdout)["image_id"] == image_id
        assert json.loads(done.stdout)["live_release"] == live
        await ImageStore(client, KeySpace(), actor="test").put(dataclasses.replace(record, release=live))
        done = await asyncio.to_thread(cli, "image", "show", env=env)
        assert done.stdout.split("\t")[-1] == "current\n", done.stdout
        done = await asyncio.to_thread(cli, "image", "forget", "--pool", "production", env=env)
        assert done.returncode == 0 and "snapshot deleted" in done.stdout, done.stderr
        assert fake_do.images.deleted == [int(image_id)]
        assert await ImageStore(client, KeySpace()).get("production") is None
        await eventually(lambda: _none(fake_do), 1, "the image to be gone", interval_s=0.01)
        # A snapshot DigitalOcean will not delete: the record goes anyway, and the error says so.
        await ImageStore(client, KeySpace(), actor="test").put(record)
        fake_do.fail("DELETE", r"^/v2/images/", 403)
        done = await asyncio.to_thread(cli, "image", "forget", "--pool", "production", env=env)
        assert done.returncode == 1 and "forgotten, but its snapshot was not deleted" in done.stderr, (
            done.stderr
        )
        assert await ImageStore(client, KeySpace()).get("production") is None
    finally:
        await client.aclose()


async def _none(fake_do: FakeDigitalOcean) -> bool:
    return fake_do.images.images == {}


async def test_a_failed_build_leaves_no_droplet_record_or_image(
    redis_url: str, fake_do: FakeDigitalOcean
) -> None:
    fake_do.fail("POST", r"^/v2/droplets$", 422)
    env = clean_env(REDIS_URL=redis_url, DIGITALOCEAN_TOKEN=TOKEN, DIGITALOCEAN_END_POINT=fake_do.url)
    env["PROVISIONER_DIGITALOCEAN_SSH_KEYS"] = "1234"
    done = await asyncio.to_thread(cli, "image", "build", "--pool", "production", env=env)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no image built for production: step create: DigitalOcean API POST"), last
    assert "Traceback" not in done.stderr and TOKEN not in done.stderr
    client = connect(redis_url)
    try:
        assert await ServerRegistry(client, KeySpace()).all() == []
        assert await ImageStore(client, KeySpace()).all() == []
    finally:
        await client.aclose()
    assert fake_do.droplets == {}
