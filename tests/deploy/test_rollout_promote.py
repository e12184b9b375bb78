"""A rollout on managed servers, end to end: local servers the provisioner made, a real
deploy of a commit to staging, a real proxy routing to both, the rollout judged on real
traffic, and the provisioner's worker deploying the staging sha to production when the
last step passes; then the weight goes back to what it was."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.rollout.model import Rollout
from state import DeployStore, KeySpace
from state.rollouts import RolloutStore
from tests.support import ROOT
from tests.support.deploy import AppRepo, current, deploy_env, servers
from tests.support.load import Load
from tests.support.procs import stop_process
from tests.support.provisioner import PartsFactory, provisioner_cli
from tests.support.proxy import ProxyProcess, run_cli
from tests.support.wait import eventually

PROXY_ENV = {"PROXY_STATS_BUCKET_S": "1", "PROXY_ROLLOUT_LEASE_S": "1", "PROXY_ROLLOUT_TICK_S": "0.05"}


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_healthy_canary_on_managed_servers_is_deployed_to_production(
    app_repo: AppRepo,
    make_parts: PartsFactory,
    redis_url: str,
    tmp_path: Path,
    proxy_process: Callable[..., ProxyProcess],
) -> None:
    parts = await make_parts(deploy_repo=str(app_repo.bare))
    prod, _stag = await servers(parts, "production", "staging")
    sha = app_repo.commit("the canary")
    assert app_repo.push("HEAD:refs/heads/staging").returncode == 0
    env = deploy_env(redis_url, tmp_path, PROVISIONER_DEPLOY_REPO=str(app_repo.bare))
    code, _out, err = await provisioner_cli(
        "deploy", "--env", "staging", "--sha", sha, env=env, timeout_s=300
    )
    assert code == 0, err
    await parts.store.set_weight(0)

    proxy = proxy_process(env=PROXY_ENV)
    log = tempfile.NamedTemporaryFile(prefix="sy-worker-", suffix=".log", delete=False)  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "worker", "--provider", "local"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    load = Load(proxy.port, concurrency=8, max_requests=200_000)
    load.start()
    rollouts = RolloutStore(parts.store.redis, KeySpace())

    async def ended() -> bool:
        record = await rollouts.read()
        return record is not None and record["status"] in ("done", "aborted", "held")

    try:
        done = await asyncio.to_thread(
            run_cli, "rollout", "start", "--steps", "50,100", "--step-s", "3", "--promote", "deploy",
            "--redis-url", redis_url,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        await eventually(
            ended, 400, "the rollout to end", interval_s=0.2, detail=lambda: Path(log.name).read_text()
        )
    finally:
        await load.stop()
        stop_process(worker, 30)
        log.close()
    r = Rollout.from_json(await rollouts.read() or {})
    assert (r.status, r.release) == ("done", sha), r.reason
    [deployed] = await DeployStore(parts.store.redis, KeySpace()).history("production", 1)
    assert (deployed.sha, deployed.result) == (sha, "succeeded")
    assert current(prod).name.endswith("-" + sha[:8])
    assert (await parts.store.read_snapshot()).weight == 0  # where it was before the rollout
    Path(log.name).unlink(missing_ok=True)
