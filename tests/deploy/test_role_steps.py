"""The app role's switch failing after `current` moved: the role puts `current` back,
starts the previous release again and removes the failed one (run by ansible-runner
against a local server the provisioner made)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import aiohttp
import pytest

from provisioner.configure import Configurer
from provisioner.deploy.releases import release_name
from provisioner.errors import ConfigureError
from provisioner.health import wait_healthy
from provisioner.scale.local import app_pid
from provisioner.scale.provider import Machine
from tests.support.deploy import AppRepo, current, releases, servers
from tests.support.provisioner import PartsFactory


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_release_that_dies_on_the_app_port_is_switched_back(
    app_repo: AppRepo, make_parts: PartsFactory, tmp_path: Path
) -> None:
    parts = await make_parts()
    (server,) = await servers(parts, "production")
    port = int(server.url.rsplit(":", 1)[1])
    live, live_pid = current(server), app_pid(Path(server.ref), port)
    sha = app_repo.commit("next")
    tar = tmp_path / "release.tar"
    subprocess.run(["git", "-C", str(app_repo.work), "archive", "-o", str(tar), sha], check=True, timeout=60)
    configurer = parts.provisioner.configurer
    assert isinstance(configurer, Configurer)
    host_vars = parts.provisioner.provider.host_vars(Machine(server.id, server.ref, "127.0.0.1", port))
    release = release_name(1_800_000_000, sha)
    quick = {"switchyard_app_health_retries": 6, "switchyard_app_health_delay_s": 0.5}
    await configurer.run(
        "production.yml",
        server.id,
        host_vars,
        {
            **quick,
            "switchyard_app_step": "prepare",
            "switchyard_app_sha": sha,
            "switchyard_app_archive": str(tar),
            "switchyard_app_release": release,
        },
        group="production",
    )
    built = Path(server.ref) / "releases" / release
    assert (built / "VERSION").read_text() == f"v1-{sha[:8]}\n" and current(server) == live
    # Passed on the side port, but started on the app port it dies at once: a version
    # the app refuses stands for anything that differs between the two starts.
    (built / "VERSION").write_text("not a version!\n")
    with pytest.raises(ConfigureError) as failed:
        await configurer.run(
            "production.yml",
            server.id,
            host_vars,
            {**quick, "switchyard_app_step": "activate", "switchyard_app_release": release},
            group="production",
        )
    assert "failed at task 'app | wait until the app answers its health check'" in str(failed.value)
    assert current(server) == live and releases(server) == [live.name]
    restarted = app_pid(Path(server.ref), port)
    assert restarted not in (None, live_pid)  # the previous release was started again
    # The role starts it and leaves: whoever puts it back into the pool checks its health.
    await wait_healthy(server.url, path="/health", timeout_s=15)
    async with aiohttp.ClientSession() as session, session.get(server.url + "/health") as response:
        assert await response.json() == {"status": "ok", "version": "v1"}
