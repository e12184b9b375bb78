"""Push to deploy, end to end: a bare repository with hooks/post-receive installed by
hooks/install, real `git push` of main, staging, a feature branch and a deletion, the
deploys run by ansible-runner into local servers the provisioner made; a broken commit,
the kept count, rollback and the releases listing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from state import DeployStore, KeySpace, connect
from tests.support import ROOT
from tests.support.deploy import (
    SICK,
    AppRepo,
    current,
    hook_env,
    live_url,
    provisioner_cli,
    releases,
    servers,
)
from tests.support.provisioner import PartsFactory

FAILED_CHECK = "app | wait until the new release answers its health check on the side port"


async def health(url: str) -> object:
    async with aiohttp.ClientSession() as session, session.get(url + "/health") as response:
        return await response.json()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_push_deploys_main_and_staging_and_nothing_else(
    app_repo: AppRepo, make_parts: PartsFactory, redis_url: str, tmp_path: Path
) -> None:
    parts = await make_parts()
    prod, stag = await servers(parts, "production", "staging")
    first_stag = current(stag)

    installed = subprocess.run(
        [str(ROOT / "hooks" / "install"), "--redis-url", redis_url, str(app_repo.bare)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    assert os.readlink(app_repo.bare / "hooks" / "post-receive") == str(ROOT / "hooks" / "post-receive")
    # Branch environments are tests/deploy/test_branch_previews.py's: off here.
    env = hook_env(redis_url, tmp_path, PROVISIONER_BRANCH_PREVIEWS="false")

    # main -> production, and only production.
    first = app_repo.commit("first")
    started = time.monotonic()
    pushed = app_repo.push("main", env)
    push_to_live_s = time.monotonic() - started
    out = pushed.stderr
    assert pushed.returncode == 0, out
    assert "remote: refs/heads/main -> production" in out
    assert f"remote: deploy of {first[:8]} to production succeeded" in out
    # Kept warm: the pool moved to the release on the side port, nothing left the pool.
    assert "remote: production: every proxy routes to the new release" in out and "drained" not in out
    assert f"remote: {prod.id}: live on {current(prod).name}" in out
    live = current(prod)
    assert live.name.endswith("-" + first[:8]) and live.parent.name == "releases"
    assert (live / "REVISION").read_text() == first + "\n"
    assert (live / "VERSION").read_text() == f"v1-{first[:8]}\n"
    assert (live / "examples" / "app" / "app.py").is_file() and (live / "venv" / "bin" / "python").exists()
    assert (live / "log").resolve() == Path(prod.ref) / "shared" / "log"
    assert await health(await live_url(parts, prod)) == {"status": "ok", "version": f"v1-{first[:8]}"}
    assert current(stag) == first_stag
    assert (await parts.store.read_snapshot()).production == (await live_url(parts, prod),)
    print(f"push-to-live: {push_to_live_s:.1f}s")

    # staging -> staging.
    pushed = app_repo.push("HEAD:refs/heads/staging", env)
    assert pushed.returncode == 0 and "remote: refs/heads/staging -> staging" in pushed.stderr, pushed.stderr
    assert current(stag).name.endswith("-" + first[:8])
    assert await health(await live_url(parts, stag)) == {"status": "ok", "version": f"v2-{first[:8]}"}

    client = connect(redis_url)
    deploys = DeployStore(client, KeySpace())
    try:
        # A feature branch and a deletion deploy nothing.
        for refspec, said in (
            ("HEAD:refs/heads/feature", "remote: refs/heads/feature: not deployed"),
            (":refs/heads/feature", "remote: refs/heads/feature deleted: nothing to deploy"),
        ):
            pushed = app_repo.push(refspec, env)
            assert pushed.returncode == 0 and said in pushed.stderr, pushed.stderr
            assert "deploying" not in pushed.stderr
        assert [(r.env, r.result) for r in await deploys.history("production")] == [
            ("production", "succeeded")
        ]
        assert len(await deploys.history("staging")) == 1
        before = releases(prod)  # the one the provisioner made, and the first deploy's
        assert len(before) == 2 and before[1] == live.name

        # A commit whose app fails its health check: the release is removed, current is
        # untouched, the old release keeps serving in the pool, the task is named.
        broken = app_repo.commit("broken", health=SICK)
        pushed = app_repo.push("main", env)
        assert pushed.returncode == 0, pushed.stderr  # the push itself landed
        assert f"error: deploy of {broken[:8]} to production failed at {prod.id}" in pushed.stderr
        assert f"task '{FAILED_CHECK}'" in pushed.stderr
        assert current(prod) == live and releases(prod) == before
        assert await health(await live_url(parts, prod)) == {"status": "ok", "version": f"v1-{first[:8]}"}
        assert (await parts.store.read_snapshot()).production == (await live_url(parts, prod),)
        failed = (await deploys.history("production"))[0]
        assert (failed.result, failed.sha, failed.failed_host, failed.failed_task) == (
            "failed",
            broken,
            prod.id,
            FAILED_CHECK,
        )

        # One more good deploy with 2 releases kept: the one the provisioner made goes.
        second = app_repo.commit("second")
        assert app_repo.push("main", env).returncode == 0
        kept = releases(prod)
        assert kept == [live.name, current(prod).name] and kept[1].endswith("-" + second[:8])
        assert await health(await live_url(parts, prod)) == {"status": "ok", "version": f"v1-{second[:8]}"}

        env_with_redis = {**env, "REDIS_URL": redis_url}
        listed = provisioner_cli("releases", "--env", "production", env=env_with_redis)
        assert listed.returncode == 0, listed.stderr
        assert f"{prod.id}  current {kept[1]}  (rollback goes to {kept[0]})" in listed.stdout
        assert f"* {kept[1]}" in listed.stdout and f"deploy   {broken[:8]}  failed" in listed.stdout

        # Rollback: back to the first, the second removed, the app restarted on it.
        rolled = provisioner_cli("rollback", "--env", "production", env=env_with_redis)
        assert rolled.returncode == 0, rolled.stderr
        assert f"rollback of {first[:8]} to production succeeded" in rolled.stdout
        assert releases(prod) == [kept[0]] and current(prod).name == kept[0]
        assert await health(await live_url(parts, prod)) == {"status": "ok", "version": f"v1-{first[:8]}"}
        history = await deploys.history("production")
        assert [(h.action, h.result, h.sha) for h in history[:2]] == [
            ("rollback", "succeeded", first),
            ("deploy", "succeeded", second),
        ]
        assert history[0].releases == {prod.id: kept[0]}

        # A second rollback has nothing older to go to: refused, nothing changes.
        again = provisioner_cli("rollback", "--env", "production", env=env_with_redis)
        assert again.returncode == 1 and "nothing to roll back to" in again.stderr, again.stderr
        assert current(prod).name == kept[0]
        assert (await parts.store.read_snapshot()).production == (await live_url(parts, prod),)
        assert await health(await live_url(parts, prod)) == {"status": "ok", "version": f"v1-{first[:8]}"}
    finally:
        await client.aclose()

    # A server the autoscaler adds now starts on the commit production runs (the one
    # rolled back to), not on the provisioner's own copy of the app.
    scaled = await make_parts(deploy_repo=str(app_repo.bare))
    (added,) = await servers(scaled, "production")
    assert (current(added) / "REVISION").read_text() == first + "\n"
    assert await health(added.url) == {"status": "ok", "version": f"v1-{first[:8]}"}

    # Git's variables never reached the deploy.
    log = (tmp_path / "hook-env.log").read_text().splitlines()
    assert log.count("run") == 6 and all(line == "run" for line in log), log
