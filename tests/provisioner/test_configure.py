"""Real ansible-runner runs of the playbooks against localhost, and their syntax."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from provisioner.configure import PLAYBOOKS_DIR, Configurer
from provisioner.errors import ConfigureError
from provisioner.scale.local import LocalProvider
from tests.support.provisioner import BIN_DIR, stop_apps
from tests.support.wait import async_wait_until


@pytest.mark.parametrize("playbook", sorted(p.name for p in PLAYBOOKS_DIR.glob("*.yml")))
def test_every_playbook_passes_the_syntax_check(playbook: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN_DIR / "ansible-playbook"), "--syntax-check", "-i", "localhost,", playbook],
        cwd=PLAYBOOKS_DIR,
        # Ansible's own files in the test's directory, not in ~/.ansible.
        env={**os.environ, "ANSIBLE_HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"playbook: {playbook}" in done.stdout


def test_both_site_playbooks_exist() -> None:
    assert {p.name for p in PLAYBOOKS_DIR.glob("*.yml")} >= {"production.yml", "staging.yml"}


def ansible_processes(runs: Path) -> list[psutil.Process]:
    """Every process of a run of this test's, children or orphans (ansible-core's workers
    setsid, so parentage can't tell): each names its run directory, which lies under `runs`.
    Runs of other test sessions on the machine lie elsewhere and are not counted."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                any(f"{runs}/sy-ansible-" in part for part in proc.cmdline())
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def run_dirs(runs: Path) -> set[Path]:
    return set(runs.glob("sy-ansible-*"))


async def test_bad_input_stops_at_the_assert_with_its_message(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path, sys.executable)
    machine = await provider.create("sy-prod-input", "production", generation="g1")
    configurer = Configurer(PLAYBOOKS_DIR, BIN_DIR, timeout_s=120)
    with pytest.raises(ConfigureError) as failed:
        await configurer.run(
            "production.yml",
            machine.name,
            provider.host_vars(machine),
            {"switchyard_production_version": "not ok!"},
            group="production",
        )
    message = str(failed.value)
    assert "failed at task 'app | check the inputs'" in message
    assert "version=not ok! (letters, digits, . _ -)" in message
    assert not (Path(machine.ref) / "releases").exists()  # it stopped before touching anything


async def test_a_run_that_matches_no_host_is_a_failure(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "other.yml").write_text(
        "- hosts: webservers\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    )
    configurer = Configurer(playbooks, BIN_DIR, timeout_s=60)
    with pytest.raises(ConfigureError, match="matched no host named sy-prod-x"):
        await configurer.run("other.yml", "sy-prod-x", {"ansible_connection": "local"})
    with pytest.raises(ConfigureError, match="does not exist"):
        await configurer.run("missing.yml", "sy-prod-x", {"ansible_connection": "local"})


async def test_a_release_that_fails_its_health_check_is_removed(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path, sys.executable)
    machine = await provider.create("sy-prod-sick", "production", generation="g1")
    configurer = Configurer(PLAYBOOKS_DIR, BIN_DIR, timeout_s=120)
    host_vars = {**provider.host_vars(machine), "switchyard_app_module": "examples.nothing"}  # dies at once
    with pytest.raises(ConfigureError) as failed:
        await configurer.run(
            "production.yml",
            machine.name,
            host_vars,
            {"switchyard_app_health_retries": 2, "switchyard_app_health_delay_s": 0.2},
            group="production",
        )
    assert (
        "failed at task 'app | wait until the new release answers its health check on the side port'"
        in str(failed.value)
    )
    server = Path(machine.ref)
    # The rescue removed the failed release and the link to it; shared/ (logs) stays.
    assert list((server / "releases").iterdir()) == []
    assert not (server / "current").is_symlink()
    assert (server / "shared" / "log").is_dir()


async def test_a_cancelled_run_ends_ansible_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(runs))
    provider = LocalProvider(tmp_path, sys.executable)
    machine = await provider.create("sy-prod-stop", "production", generation="g1")
    configurer = Configurer(PLAYBOOKS_DIR, BIN_DIR, timeout_s=120)
    before = run_dirs(runs)
    run = asyncio.create_task(
        configurer.run("production.yml", machine.name, provider.host_vars(machine), group="production")
    )
    await async_wait_until(lambda: bool(ansible_processes(runs)), 30, "ansible-playbook to start")
    # The deploy root's folders come first; a folder in releases/ is the build under way.
    await async_wait_until(
        lambda: any((Path(machine.ref) / "releases").glob("*")), 30, "the release to be built"
    )
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # Nothing of the run is left: no process (a worker mid-task included), no directory.
    assert ansible_processes(runs) == []
    assert run_dirs(runs) - before == set()
    stop_apps(tmp_path)
