"""A pusher who hangs up mid-deploy: the deploy's output is a pipe whose reader has gone.
The deploy carries on, puts its server back in the pool and records its result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from state import DeployStore, KeySpace, ServerRegistry, StateStore, connect
from tests.support import ROOT
from tests.support.deploy import AppRepo, current, deploy_env, servers
from tests.support.provisioner import PartsFactory

PREPARED = "built and healthy on the side port"


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_deploy_whose_reader_hangs_up_still_finishes_with_the_server_in_its_pool(
    app_repo: AppRepo, make_parts: PartsFactory, redis_url: str, tmp_path: Path
) -> None:
    parts = await make_parts()
    (server,) = await servers(parts, "production")
    sha = app_repo.commit("deployed to nobody listening")
    assert app_repo.push("main").returncode == 0
    # A second backend (added by hand, so not deployed to): the server is not the pool's
    # only one, so nothing is printed between the line read last and the drain.
    client = connect(redis_url)
    try:
        await StateStore(client, KeySpace()).add_backend("production", "http://127.0.0.1:9")
    finally:
        await client.aclose()

    proc = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "deploy", "--env", "production", "--sha", sha,
         "--repo", str(app_repo.bare)],
        cwd=ROOT,
        env=deploy_env(redis_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    seen = []
    # Read up to the last line before the switch, then hang up: the next line ("every
    # proxy routes to the new release") is written once the pool has moved.
    for line in proc.stdout:
        seen.append(line)
        if PREPARED in line:
            break
    assert any(PREPARED in line for line in seen), seen
    proc.stdout.close()
    errors = proc.stderr.read()
    proc.stderr.close()
    code = proc.wait(180)

    client = connect(redis_url)
    try:
        pool = (await StateStore(client, KeySpace()).read_snapshot()).pool("production")
        history = await DeployStore(client, KeySpace()).history("production")
        # Kept warm, the deploy moved the server to its side port: its record says where.
        now = await ServerRegistry(client, KeySpace(), actor="test").get(server.id)
    finally:
        await client.aclose()
    assert now is not None and now.url in pool and now.warm_url == server.url, (pool, errors)
    (record,) = history
    assert (record.result, record.sha) == ("succeeded", sha), record.error
    assert (current(server) / "REVISION").read_text() == sha + "\n"
    # As documented: the exit code is the deploy's, read or not; no traceback, no
    # "Exception ignored" at exit.
    assert code == 0, errors
    assert "Traceback" not in errors and "Exception ignored" not in errors, errors
