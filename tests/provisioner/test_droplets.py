"""The DigitalOcean provider against the stand-in API (validated against DigitalOcean's
OpenAPI description), configured over real SSH: the full flow and every failure path
leave no droplet behind that is not registered."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from provisioner.app import Parts
from provisioner.errors import StepFailed
from provisioner.scale.do_api import DigitalOceanApi, DigitalOceanError
from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support.ports import free_port
from tests.support.provisioner import FINGERPRINT, TOKEN, PartsFactory
from tests.support.sshd import SshServer

STEPS = ["create", "active", "reachable", "configure", "health", "register"]


async def droplet_parts(
    make_parts: PartsFactory,
    fake: FakeDigitalOcean,
    sshd: SshServer,
    tmp_path: Path,
    extravars: dict[str, object] | None = None,
    **settings: Any,
) -> Parts:
    values: dict[str, Any] = {
        "token": TOKEN,
        "provider": "digitalocean",
        "digitalocean_end_point": fake.url,
        "digitalocean_ssh_keys": (FINGERPRINT,),
        "digitalocean_tags": ("web",),
        "ssh_port": sshd.port,
        "ssh_private_key_file": str(sshd.key),
        "remote_python": sys.executable,
        "remote_app_dir": str(tmp_path / "droplets"),
        "remote_app_port": free_port(),
        "remote_app_listen_host": "127.0.0.1",
        "remote_install_deps": False,
        "active_timeout_s": 10.0,
        "reachable_timeout_s": 10.0,
    }
    values.update(settings)
    # The "droplet" is this machine: its Ansible temp files go to the test's directory,
    # not to ~/.ansible/tmp as they would on a real droplet.
    extravars = {"ansible_remote_tmp": str(tmp_path / "remote-tmp"), **(extravars or {})}
    return await make_parts(extravars, **values)


async def assert_all_registered(parts: Parts) -> None:
    """Every droplet carrying the owner tag is a registered server."""
    own = await parts.provisioner.provider.list_own()
    registered = {r.id for r in await parts.registry.all()}
    assert [m.name for m in own if m.name not in registered] == []


async def assert_nothing_left(parts: Parts) -> None:
    """No droplet of ours, no record, nothing in the pools."""
    await assert_all_registered(parts)
    assert await parts.provisioner.provider.list_own() == []
    assert await parts.registry.all() == []
    snapshot = await parts.store.read_snapshot()
    assert snapshot.production == () and snapshot.staging == ()


# Two full Ansible runs over SSH: 28 s on a quiet machine, past 60 s at a load average of 7.
@pytest.mark.timeout(180)
async def test_full_flow_over_ssh_with_rate_limits_then_retire(
    make_parts: PartsFactory,
    fake_do: FakeDigitalOcean,
    sshd: SshServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    parts = await droplet_parts(make_parts, fake_do, sshd, tmp_path)
    fake_do.fail("POST", r"^/v2/droplets$", 429, times=2)
    fake_do.fail("GET", r"^/v2/droplets/\d+$", 429)
    fake_do.fail("GET", r"^/v2/droplets/\d+$", 500)

    record = await parts.provisioner.provision("production", "test")

    assert record.state == "active" and record.step == ""
    assert record.url.startswith("http://127.0.0.1:") and record.address == "127.0.0.1"
    assert list(record.timings) == STEPS
    assert fake_do.calls.count(("POST", "/v2/droplets")) == 3  # two 429s, then accepted
    (droplet,) = fake_do.droplets.values()
    assert droplet["name"] == record.id and str(droplet["id"]) == record.ref
    generation = await parts.store.generation()
    assert generation is not None
    assert droplet["tags"] == [
        "switchyard",
        "switchyard-production",
        f"switchyard-gen-{generation.id}",
        "web",
    ]
    assert (await parts.store.read_snapshot()).production == (record.url,)
    assert await parts.registry.get(record.id) == record
    async with aiohttp.ClientSession() as session, session.get(record.url + "/health") as response:
        assert (await response.json()) == {"status": "ok", "version": "v1"}
    await assert_all_registered(parts)

    drained = await parts.provisioner.retire(record, "test")
    assert drained.drained
    assert fake_do.droplets == {} and fake_do.destroyed == [droplet["id"]]
    assert await parts.registry.all() == []
    await assert_nothing_left(parts)
    assert TOKEN not in caplog.text


@dataclass(frozen=True)
class Case:
    step: str  # the step expected to fail
    settings: dict[str, Any] = field(default_factory=dict)
    failures: tuple[tuple[str, str, int | None, bool], ...] = ()  # method, path, status, after_create
    destroyed: int = 1  # droplets the clean-up destroys


FAILURES = {
    "create refused (422)": Case("create", failures=(("POST", r"^/v2/droplets$", 422, False),), destroyed=0),
    "create 500 after the droplet was made": Case(
        "create", failures=(("POST", r"^/v2/droplets$", 500, True),)
    ),
    "create hangs after the droplet was made": Case(
        "create", {"digitalocean_api_timeout_s": 0.5}, (("POST", r"^/v2/droplets$", None, True),)
    ),
    "never active": Case("active", {"active_timeout_s": 0.3}),
    "status polls hang": Case(
        "active", {"digitalocean_api_timeout_s": 0.3}, ((r"GET", r"^/v2/droplets/\d+$", None, False),) * 3
    ),
    "ssh never answers": Case("reachable", {"reachable_timeout_s": 0.3, "ssh_port": 0}),
    "ssh key refused": Case("configure", {"ssh_private_key_file": ""}),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_each_failed_step_is_cleaned_up(  # noqa: PLR0917  (fixtures)
    case: str,
    make_parts: PartsFactory,
    fake_do: FakeDigitalOcean,
    sshd: SshServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    step, settings, failures, destroyed = (c := FAILURES[case]).step, c.settings, c.failures, c.destroyed
    if settings.get("ssh_port") == 0:
        settings = {**settings, "ssh_port": free_port()}  # nothing listens there
    if "ssh_private_key_file" in settings:
        settings = {**settings, "ssh_private_key_file": str(sshd.other_key)}
    if step == "active":
        fake_do.boot_s = 60.0
    # A fresh droplet may answer before it accepts the key: the playbook waits for that,
    # 300 s by default; here the refusal is final.
    quick: dict[str, object] = {"switchyard_app_connection_timeout_s": 2}
    parts = await droplet_parts(make_parts, fake_do, sshd, tmp_path, extravars=quick, **settings)
    for method, path, status, after_create in failures:
        fake_do.fail(method, path, status, after_create=after_create)

    with pytest.raises(StepFailed) as failed:
        await parts.provisioner.provision("production", "test")

    assert failed.value.step == step and failed.value.cleaned, str(failed.value)
    assert fake_do.droplets == {} and len(fake_do.destroyed) == destroyed
    assert await parts.registry.all() == []
    await assert_nothing_left(parts)
    (last,) = [e for e in await parts.store.audit_log(5) if e.what == f"server:{failed.value.server_id}"][:1]
    assert isinstance(last.after, dict) and last.after["failed_step"] == step
    [notice] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("server.failed ")]
    assert f"step={step}" in notice and "served=False" in notice, notice  # never in its pool
    assert TOKEN not in caplog.text


async def test_a_server_the_proxies_cannot_reach_fails_its_health_check(
    make_parts: PartsFactory, fake_do: FakeDigitalOcean, sshd: SshServer, tmp_path: Path
) -> None:
    # The app listens on 127.0.0.1 "on the droplet"; the provisioner reaches the droplet
    # at its private address 127.0.0.2, where Ansible (SSH) gets in but HTTP does not.
    parts = await droplet_parts(
        make_parts, fake_do, sshd, tmp_path, digitalocean_address="private", health_timeout_s=1.0
    )
    with pytest.raises(StepFailed) as failed:
        await parts.provisioner.provision("staging", "test")
    assert failed.value.step == "health" and failed.value.cleaned
    assert "http://127.0.0.2:" in str(failed.value)
    assert fake_do.droplets == {} and len(fake_do.destroyed) == 1
    await assert_nothing_left(parts)


async def test_a_failed_clean_up_is_recorded_and_finished_by_the_next_reconcile(
    make_parts: PartsFactory, fake_do: FakeDigitalOcean, sshd: SshServer, tmp_path: Path
) -> None:
    parts = await droplet_parts(make_parts, fake_do, sshd, tmp_path)
    fake_do.fail("POST", r"^/v2/droplets$", 500, after_create=True)
    fake_do.fail("DELETE", r"^/v2/droplets/\d+$", 500, times=3)  # one call and both retries
    with pytest.raises(StepFailed) as failed:
        await parts.provisioner.provision("production", "test")
    assert failed.value.step == "create" and not failed.value.cleaned
    (left,) = await parts.registry.all()
    assert left.state == "cleanup_failed" and "500" in left.error
    assert len(fake_do.droplets) == 1

    done = await parts.provisioner.reconcile()
    assert done == [f"cleaned up {left.id} (left cleanup_failed at step create by provisioner:test)"]
    assert fake_do.droplets == {} and await parts.registry.all() == []
    await assert_nothing_left(parts)


async def test_the_adapter_pages_retries_and_maps_errors(fake_do: FakeDigitalOcean) -> None:
    api = DigitalOceanApi(TOKEN, fake_do.url, timeout_s=5, retries=2, backoff_s=0.01)
    fake_do.max_per_page = 2
    ids = [
        await asyncio.to_thread(
            api.create,
            name=f"sy-prod-{i}",
            region="nyc3",
            size="s-1vcpu-1gb",
            image="ubuntu-24-04-x64",
            ssh_keys=("289794", FINGERPRINT),
            tags=("switchyard",),
        )
        for i in range(5)
    ]
    assert [d.id for d in await asyncio.to_thread(api.list, "switchyard")] == ids
    assert await asyncio.to_thread(api.list, "nobody") == []
    assert fake_do.calls.count(("GET", "/v2/droplets")) == 4  # 3 pages, then 1 empty list

    fake_do.fail("POST", r"^/v2/droplets$", 422)
    with pytest.raises(DigitalOceanError) as refused:
        await asyncio.to_thread(
            api.create, name="x", region="nyc3", size="nope", image="1", ssh_keys=(), tags=()
        )
    assert refused.value.status == 422 and not refused.value.maybe_created
    assert "unprocessable_entity" in str(refused.value)

    fake_do.fail("GET", r"^/v2/droplets/\d+$", 500, times=3)
    with pytest.raises(DigitalOceanError) as broken:
        await asyncio.to_thread(api.get, ids[0])
    assert broken.value.status == 500 and fake_do.calls.count(("GET", f"/v2/droplets/{ids[0]}")) == 3

    for droplet_id in ids:
        assert await asyncio.to_thread(api.destroy, droplet_id)
    assert await asyncio.to_thread(api.destroy, ids[0]) is False
    assert await asyncio.to_thread(api.get, ids[0]) is None

    wrong = DigitalOceanApi("not-the-token", fake_do.url, timeout_s=5, retries=0)
    with pytest.raises(DigitalOceanError) as denied:
        await asyncio.to_thread(wrong.list, "switchyard")
    assert denied.value.status == 401


async def test_the_stand_in_catches_contract_violations(fake_do: FakeDigitalOcean) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        # python-digitalocean's trailing slash and null vpc_uuid are normalised, not reported ...
        fine = {"name": "a", "size": "s-1vcpu-1gb", "image": "x", "vpc_uuid": None}
        async with session.post(fake_do.url + "droplets/", json=fine, headers=headers) as response:
            assert response.status == 202
        assert fake_do.violations == []
        # ... but a body the real API would refuse is.
        async with session.post(fake_do.url + "droplets", json={"name": "b"}, headers=headers) as response:
            assert response.status == 202
    assert len(fake_do.violations) == 1 and "Request body validation error" in fake_do.violations[0]
    fake_do.violations.clear()
    fake_do.droplets.clear()
