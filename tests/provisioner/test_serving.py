"""A new server serves at its first healthy answer while its Ansible run goes on
(provisioner/scale/serving.py), through the local provider and the real production
playbook. The playbook gets one more play after its own, which holds the run until the
test has seen the server in its pool (at most 60 s, then the run fails): without serving
before the run ends, no test here passes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from provisioner.app import Parts
from provisioner.configure import PLAYBOOKS_DIR
from provisioner.errors import StepFailed
from state import ServerRecord
from tests.support.provisioner import PartsFactory
from tests.support.wait import eventually

STEPS = ["create", "active", "reachable", "configure", "health", "register"]


def held_playbooks(tmp_path: Path, then: str = "") -> tuple[Path, Path]:
    """playbooks/ with production.yml holding its run at its end until a file exists, then
    running the tasks `then`: (the folder, the file to write)."""
    # In a tree of its own beside links to the rest of the repository: the roles read
    # the app's source and Switchyard's code at ../ from the playbooks.
    tree, seen = tmp_path / "tree", tmp_path / "seen"
    folder = tree / PLAYBOOKS_DIR.name
    folder.mkdir(parents=True)
    for entry in PLAYBOOKS_DIR.parent.iterdir():
        if entry != PLAYBOOKS_DIR:
            (tree / entry.name).symlink_to(entry)
    for entry in PLAYBOOKS_DIR.iterdir():
        if entry.name != "production.yml":
            (folder / entry.name).symlink_to(entry)
    held = (
        "\n- name: test | hold the run until the server is seen in its pool\n"
        "  hosts: production\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        f"    - ansible.builtin.wait_for: {{path: {str(seen)!r}, timeout: 60}}\n"
    )
    (folder / "production.yml").write_text((PLAYBOOKS_DIR / "production.yml").read_text() + held + then)
    return folder, seen


async def pooled(parts: Parts) -> tuple[str, ...]:
    return (await parts.store.read_snapshot()).production


async def seen_in_pool(parts: Parts, adding: asyncio.Future[ServerRecord], seen: Path) -> str:
    """The new server's URL once it is in its pool, its run still held; then let go."""
    try:
        await eventually(
            lambda: pooled(parts),
            120,
            "the new server in its pool",
            interval_s=0.05,
            alive=lambda: _alive(adding),
        )
        [record] = await parts.registry.all()
        assert (record.state, record.step, adding.done()) == ("provisioning", "configure", False)
        [url] = await pooled(parts)
        async with aiohttp.ClientSession() as session, session.get(url + "/health") as response:
            assert (response.status, (await response.json())["status"]) == (200, "ok")
        return url
    finally:
        seen.touch()  # the run goes on either way: a failed assertion leaves nothing running


def _alive(adding: asyncio.Future[ServerRecord]) -> None:
    if adding.done():
        adding.result()  # its error, else:
        raise AssertionError("the provisioning ended before the server was seen in its pool")


async def test_a_new_server_serves_while_its_run_goes_on(make_parts: PartsFactory, tmp_path: Path) -> None:
    parts = await make_parts()
    parts.provisioner.configurer.playbooks_dir, seen = held_playbooks(tmp_path)
    adding = asyncio.ensure_future(parts.provisioner.provision("production", "test"))

    url = await seen_in_pool(parts, adding, seen)

    record = await adding
    assert (record.state, record.step, record.url) == ("active", "", url)
    assert list(record.timings) == STEPS
    # Both counted from the run's start: it served before the run ended.
    assert record.timings["health"] + record.timings["register"] < record.timings["configure"]
    assert await pooled(parts) == (url,)


async def test_a_run_failing_after_the_server_served_takes_it_out(
    make_parts: PartsFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    parts = await make_parts()
    parts.provisioner.configurer.playbooks_dir, seen = held_playbooks(
        tmp_path, "    - ansible.builtin.fail: {msg: the run failed after the server served}\n"
    )
    adding = asyncio.ensure_future(parts.provisioner.provision("production", "test"))

    url = await seen_in_pool(parts, adding, seen)

    with pytest.raises(StepFailed) as failed:
        await adding
    assert failed.value.step == "configure" and failed.value.cleaned, str(failed.value)
    assert "the run failed after the server served" in str(failed.value)
    assert await pooled(parts) == () and await parts.registry.all() == []
    assert list((tmp_path / "servers").iterdir()) == []  # destroyed: its app stopped, its folder gone
    [last] = [e for e in await parts.store.audit_log(10) if e.what == f"server:{failed.value.server_id}"][:1]
    assert isinstance(last.after, dict) and last.after["failed_step"] == "configure"
    # The notice says it had served (and was drained), which a failed step alone does not.
    [notice] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("server.failed ")]
    assert "served=True" in notice and "step=configure" in notice, notice
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/health")
