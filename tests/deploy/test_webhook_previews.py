"""The push webhook does what a `git push` here does for previews: with branch_previews a
branch's push deploys its preview and its deletion removes it; with deploy_hold a push to
main holds its release at a preview instead of deploying it."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import aiohttp
import pytest

from provisioner.deploy.gitrefs import ZERO_SHA
from state.previewstore import PreviewStore
from tests.deploy.test_webhook import event, headers, post
from tests.support.deploy import AppRepo, current, deploy_env, servers, start_webhook, stop_webhook
from tests.support.ports import free_port, free_port_run
from tests.support.provisioner import PartsFactory
from tests.support.wait import eventually


async def version_at(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url + "/health") as response:
        return str((await response.json())["version"])


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_branch_pushes_and_held_releases_through_the_webhook(
    app_repo: AppRepo, make_parts: PartsFactory, redis_url: str, tmp_path: Path
) -> None:
    parts = await make_parts()
    prod, _stag = await servers(parts, "production", "staging")
    live = current(prod)
    old = app_repo.commit("before")
    sha = app_repo.commit("pushed to the code host")
    assert app_repo.push("main").returncode == 0
    assert app_repo.push("HEAD:refs/heads/feature").returncode == 0
    secret = "whsec-" + secrets.token_hex(16)
    port = free_port()
    env = deploy_env(
        redis_url,
        tmp_path,
        PROVISIONER_PUSH_WEBHOOK_SECRET=secret,
        PROVISIONER_DEPLOY_REPO=str(app_repo.bare),
        PROVISIONER_DEPLOY_HOLD="true",
        PROVISIONER_PREVIEW_PORT_BASE=str(free_port_run(4)),
    )
    log_path = tmp_path / "webhook.log"
    proc = start_webhook(env, port, log_path)
    url = f"http://127.0.0.1:{port}/push"
    previews = PreviewStore.of(parts.store)

    async def shows(name: str, gone: bool = False) -> bool:
        assert proc.poll() is None, log_path.read_text()
        return (name in await previews.previews()) != gone

    def signed(body: bytes) -> dict[str, str]:
        return headers(body, secret, str(uuid.uuid4()))

    try:
        detail = lambda: ": " + log_path.read_text()  # noqa: E731

        # A branch: its preview, serving its commit on the staging servers.
        body = event("refs/heads/feature", old, sha)
        assert await post(url, body, signed(body)) == (
            202,
            {"preview_of": "feature", "removing": False, "sha": sha},
        )
        await eventually(lambda: shows("feature"), 120, "the branch's preview", interval_s=0.1, detail=detail)
        branch = await previews.preview("feature")
        assert branch.sha == sha and await version_at(branch.backends[0]) == f"preview-{sha[:8]}"

        # main with deploy_hold: held at <short sha>, production untouched.
        body = event("refs/heads/main", old, sha)
        assert await post(url, body, signed(body)) == (202, {"deploying": "production", "sha": sha})
        await eventually(lambda: shows(sha[:8]), 120, "the held release", interval_s=0.1, detail=detail)
        held = await previews.preview(sha[:8])
        assert (held.kind, held.env, held.sha) == ("release", "production", sha)
        assert await version_at(held.backends[0]) == f"v1-{sha[:8]}"
        assert current(prod) == live

        # The branch deleted: its preview goes.
        body = event("refs/heads/feature", sha, ZERO_SHA)
        assert await post(url, body, signed(body)) == (
            202,
            {"preview_of": "feature", "removing": True, "sha": ZERO_SHA},
        )
        await eventually(
            lambda: shows("feature", gone=True), 60, "the preview to go", interval_s=0.1, detail=detail
        )
    finally:
        code = stop_webhook(proc)
    output = log_path.read_text()
    assert code == 0, output
    assert "refs/heads/feature -> preview feature" in output and secret not in output
