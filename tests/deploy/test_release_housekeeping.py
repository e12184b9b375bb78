"""Seed 001's release commands through the CLI, against local servers the provisioner
made, deploys run by ansible-runner: `releases keep SHA --days N` outlives pruning,
`releases clean` removes old and failed releases, `deploy --resume` finishes a deploy
that failed part way, skipping the server already on its commit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from provisioner.deploy.releases import release_name
from state import DeployStore, KeySpace
from tests.support.deploy import AppRepo, current, deploy_env, provisioner_cli, releases, servers
from tests.support.provisioner import PartsFactory


def ok(*args: str, env: dict[str, str]) -> str:
    done = provisioner_cli(*args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_a_kept_release_outlives_pruning_and_clean_removes_old_and_failed_ones(
    app_repo: AppRepo, make_parts: PartsFactory, redis_url: str, tmp_path: Path
) -> None:
    parts = await make_parts()
    (prod,) = await servers(parts, "production")
    # Restarting deploys: kept warm, the release before the live one runs, and is never
    # pruned or cleaned while it does (tests/deploy/test_deploy_under_load.py).
    env = deploy_env(
        redis_url, tmp_path, PROVISIONER_DEPLOY_KEEP_RELEASES="2", PROVISIONER_DEPLOY_KEEP_WARM="0"
    )
    repo = str(app_repo.work)

    def deploy(sha: str) -> None:
        ok("deploy", "--env", "production", "--sha", sha, "--repo", repo, env=env)

    first = app_repo.commit("first")
    deploy(first)
    kept = current(prod).name
    said = ok("releases", "keep", first[:7], "--days", "10", "--env", "production", env=env)
    assert f"{prod.id}: {kept} kept until " in said
    until = int((current(prod) / ".switchyard-keep-until").read_text())
    assert abs(until - (time.time() + 10 * 86_400)) < 120
    # Two more deploys with 2 releases kept: the kept one stays past the count.
    second, third = app_repo.commit("second"), app_repo.commit("third")
    deploy(second)
    deploy(third)
    names = releases(prod)
    assert names[0] == kept and len(names) == 3 and names[2] == current(prod).name
    listed = ok("releases", "--env", "production", env=env)
    assert f"  {kept}  kept until " in listed
    reported = json.loads(ok("releases", "--env", "production", "--json", env=env))
    assert reported["servers"][prod.id]["kept"] == {kept: until}

    # A build cut short (no check passed) newer than current is a failed release. A
    # checked one (held), a kept one (made by hand for a long command, as in seed 001)
    # and an older unchecked one (live once) are not.
    later = [release_name(time.time() + 60 * i, c * 40) for i, c in ((1, "a"), (2, "b"), (3, "c"))]
    for name in later:
        (Path(prod.ref) / "releases" / name).mkdir()
    (Path(prod.ref) / "releases" / later[1] / ".switchyard-checked").write_text("v1-bbbbbbbb\n")
    ok("releases", "keep", "c" * 8, "--days", "1", "--env", "production", env=env)
    (Path(prod.ref) / "releases" / kept / ".switchyard-checked").unlink()
    # ...and with the held one counted, `second` is past the kept count of 2.
    said = ok("releases", "clean", "--env", "production", env=env)
    assert f"{prod.id}: removed {later[0]}, {names[1]}" in said
    assert releases(prod) == [kept, names[2], later[1], later[2]]
    assert ok("releases", "clean", "--env", "production", env=env).strip() == f"{prod.id}: nothing to clean"

    # --days 0 takes the keep away: the next clean prunes it as any other.
    said = ok("releases", "keep", first, "--days", "0", "--env", "production", env=env)
    assert f"{kept} no longer kept" in said
    said = ok("releases", "clean", "--env", "production", env=env)
    assert f"removed {kept}" in said and releases(prod) == [names[2], later[1], later[2]]
    assert current(prod).name == names[2]


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_resume_finishes_a_failed_deploy_and_skips_the_server_already_on_it(
    app_repo: AppRepo, make_parts: PartsFactory, redis_url: str, tmp_path: Path
) -> None:
    parts = await make_parts()
    first_server, second_server = sorted(await servers(parts, "production", "production"), key=lambda s: s.id)
    # Restarting, server by server: a drain that runs out stops the deploy half-way.
    env = deploy_env(redis_url, tmp_path, PROVISIONER_DRAIN_TIMEOUT_S="1", PROVISIONER_DEPLOY_KEEP_WARM="0")
    repo = str(app_repo.work)
    sha = app_repo.commit("next")

    # A proxy that still has a request in flight on the second server: its drain runs
    # out, after the first server is switched. The deploy fails there.
    await parts.store.heartbeat(
        "stuck:1:8080", {"version": 2**40, "inflight": {second_server.url: 1}}, ttl_s=120
    )
    failed = provisioner_cli("deploy", "--env", "production", "--sha", sha, "--repo", repo, env=env)
    assert failed.returncode == 1 and f"failed at {second_server.id}, task 'drain'" in failed.stderr, (
        failed.stderr
    )
    switched = current(first_server).name
    assert switched.endswith(sha[:8]) and not current(second_server).name.endswith(sha[:8])
    # Prepared there but never switched to: discarded, as on any server not reached.
    assert not any(n.endswith(sha[:8]) for n in releases(second_server)), releases(second_server)

    await parts.store.redis.delete(KeySpace().instance("stuck:1:8080"))
    said = ok("deploy", "--env", "production", "--resume", "--repo", repo, env=env)
    assert f"{first_server.id}: on {sha[:8]} already (release {switched}): skipped" in said
    assert f"resumed {sha[:8]} on production: 1 server(s)" in said
    assert current(first_server).name == switched  # not built again
    assert current(second_server).name.endswith(sha[:8])
    record = (await DeployStore(parts.store.redis, KeySpace()).history("production", 1))[0]
    assert (record.action, record.result, record.sha) == ("deploy", "succeeded", sha)
    assert set(record.releases) == {first_server.id, second_server.id}

    # The last deploy succeeded: nothing to resume, one line, exit 1.
    again = provisioner_cli("deploy", "--env", "production", "--resume", "--repo", repo, env=env)
    assert (
        again.returncode == 1 and "nothing to resume" in again.stderr and len(again.stderr.splitlines()) == 1
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("releases", "keep", "--env", "production"), "releases keep needs a commit and --days"),
        (("releases", "keep", "xyz1234", "--days", "1", "--env", "production"), "is not a commit id"),
        (("releases", "keep", "abcdef1", "--days", "-1", "--env", "production"), "--days must be 0 to 3650"),
        (("releases", "clean", "abcdef1", "--env", "production"), "takes no commit and no --days"),
        (("deploy", "--env", "production", "--resume", "--sha", "a" * 40), "not allowed with argument"),
    ],
)
def test_bad_release_commands_get_one_line_and_exit_2(
    args: tuple[str, ...], message: str, redis_url: str, tmp_path: Path
) -> None:
    done = provisioner_cli(*args, env=deploy_env(redis_url, tmp_path), timeout_s=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
