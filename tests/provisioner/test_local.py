"""The local provider through the real steps: a directory, the product playbook run by
ansible-runner with ansible_connection=local, the app on a free port, the pool."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from provisioner.configure import PLAYBOOKS, PLAYBOOKS_DIR
from provisioner.errors import ProviderError, StepFailed
from provisioner.scale.local import LocalProvider, app_pid, running_in
from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.provisioner import PartsFactory
from tests.support.wait import wait_until

APP_FILES = ["__init__.py", "app/__init__.py", "app/__main__.py", "app/app.py"]


def source_revision() -> str:
    """What the role computes by default: SHA-1 over each file's name, a NUL, its text
    (as Ansible's file lookup reads it, trailing whitespace stripped)."""
    text = "".join(f"{name}\0{(ROOT / 'examples' / name).read_text().rstrip()}" for name in APP_FILES)
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324  (an identifier, not security)


async def get_json(url: str) -> object:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_provision_redeploy_and_retire_a_local_server(make_parts: PartsFactory, tmp_path: Path) -> None:
    parts = await make_parts()
    record = await parts.provisioner.provision("production", "test")

    server = tmp_path / "servers" / record.id
    assert record.state == "active" and record.ref == str(server) and record.provider == "local"
    assert (await parts.store.read_snapshot()).production == (record.url,)
    assert await get_json(record.url + "/health") == {"status": "ok", "version": "v1"}
    (release,) = (server / "releases").iterdir()
    stamp, short = release.name.split("-")
    assert len(stamp) == 16 and stamp.endswith("Z") and stamp[8] == "T"
    assert (server / "current").resolve() == release
    assert (release / "REVISION").read_text() == source_revision() + "\n" and short == source_revision()[:8]
    assert sorted(str(p.relative_to(release / "examples")) for p in release.rglob("*.py")) == sorted(
        APP_FILES
    )
    port = int(record.url.rsplit(":", 1)[1])
    first_pid = app_pid(server, port)
    assert first_pid is not None and Path(os.readlink(f"/proc/{first_pid}/cwd")) == release

    # Run again on the same revision, the playbook changes nothing; on another it builds
    # a new release beside the live one, swaps `current` and restarts the app on it.
    provider = parts.provisioner.provider
    assert isinstance(provider, LocalProvider)
    machine = (await provider.list_own())[0]
    again = await parts.provisioner.configurer.run(
        PLAYBOOKS["production"], record.id, provider.host_vars(machine), group="production"
    )
    assert again.changed == 0 and [p.name for p in (server / "releases").iterdir()] == [release.name]
    assert app_pid(server, port) == first_pid
    await parts.provisioner.configurer.run(
        PLAYBOOKS["production"],
        record.id,
        provider.host_vars(machine),
        {"switchyard_app_revision": "0" * 40},
        group="production",
    )
    releases = sorted((server / "releases").iterdir())
    assert len(releases) == 2 and (server / "current").resolve() == releases[1]
    second_pid = app_pid(server, port)
    assert second_pid not in (None, first_pid)
    assert not os.path.exists(f"/proc/{first_pid}/cwd")  # the old app ended
    assert await get_json(record.url + "/health") == {"status": "ok", "version": "v1"}

    result = await parts.provisioner.retire(record, "test")
    assert result.drained and not server.exists()
    assert not os.path.exists(f"/proc/{second_pid}/cwd")
    assert (await parts.store.read_snapshot()).production == ()
    assert await parts.registry.all() == []
    whats = [(e.what, e.after) for e in await parts.store.audit_log(20)]
    assert ("pool:production", []) in whats and ("pool:production", [record.url]) in whats


async def test_the_staging_playbook_deploys_v2(make_parts: PartsFactory) -> None:
    parts = await make_parts()
    record = await parts.provisioner.provision("staging", "test")
    assert (await parts.store.read_snapshot()).staging == (record.url,)
    assert await get_json(record.url + "/health") == {"status": "ok", "version": "v2"}
    await parts.provisioner.retire(record, "test")
    assert await parts.registry.all() == [] and (await parts.store.read_snapshot()).staging == ()


async def test_destroy_ends_only_the_process_running_from_the_server(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path / "servers", sys.executable)
    machine = await provider.create("sy-prod-pid", "production", generation="g1")
    server = Path(machine.ref)
    # A process of someone else's, whose pid ended up in the pid file (pids are reused),
    # and a shell someone opened in the server's directory: both are left alone.
    stranger = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    visitor = subprocess.Popen(["sleep", "60"], cwd=server)
    # An app a stopped playbook started without writing its pid file: ended.
    release = server / "releases" / "r1"
    release.mkdir(parents=True)
    orphan = subprocess.Popen(
        [sys.executable, "-m", "examples.app", "--version", "v1", "--listen", f"127.0.0.1:{free_port()}"],
        cwd=release,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (server / "shared").mkdir()
        (server / "shared" / f"app-{machine.port}.pid").write_text(f"{stranger.pid}\n")
        assert app_pid(server, machine.port) is None
        wait_until(lambda: orphan.pid in running_in(server), 10, "the orphan app to be seen")
        assert running_in(server) == {orphan.pid}
        assert await provider.destroy(machine.name, machine.ref)
        assert orphan.wait(10) is not None and not server.exists()
        assert stranger.poll() is None and visitor.poll() is None
        assert await provider.destroy(machine.name, machine.ref) is False
    finally:
        for proc in (stranger, visitor, orphan):
            proc.kill()
            proc.wait(5)
    with pytest.raises(ProviderError, match="is not under"):
        await provider.destroy("sy-prod-pid", str(tmp_path / "elsewhere"))


async def test_missing_playbook_dir_is_a_configure_failure(make_parts: PartsFactory, tmp_path: Path) -> None:
    parts = await make_parts()
    parts.provisioner.configurer.playbooks_dir = tmp_path / "nowhere"
    with pytest.raises(StepFailed, match=r"step 'configure' failed: playbook .* does not exist"):
        await parts.provisioner.provision("production", "test")
    assert not any((tmp_path / "servers").iterdir())
    assert await parts.registry.all() == []
    assert PLAYBOOKS_DIR.is_dir()
