"""Branch environments end to end: real `git push` of feature branches into a bare
repository with hooks/post-receive installed, deployed by ansible-runner onto the local
staging server as apps of their own, reached through a running proxy at
`<slug>.preview.localhost`; redeployed, capped, deleted, listed and removed by hand."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from proxy.app import ProxyApp
from state.previewstore import PreviewStore
from tests.support.deploy import AppRepo, hook_env, install_hooks, provisioner_cli, servers
from tests.support.ports import free_port_run
from tests.support.provisioner import PartsFactory
from tests.support.wait import eventually


async def via_proxy(proxy: ProxyApp, host: str, path: str = "/health") -> tuple[int, object]:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s,
        s.get(f"http://127.0.0.1:{proxy.port}{path}", headers={"Host": host}) as r,
    ):
        return r.status, await r.json()


async def health(url: str) -> object:
    async with aiohttp.ClientSession() as session, session.get(url + "/health") as response:
        return await response.json()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_a_pushed_branch_is_a_preview_until_it_is_deleted(
    app_repo: AppRepo, make_parts: PartsFactory, redis_url: str, tmp_path: Path, proxy: ProxyApp
) -> None:
    parts = await make_parts()
    prod, stag = await servers(parts, "production", "staging")
    install_hooks(app_repo, redis_url)
    base = free_port_run(4)
    url = f"http://{{name}}.preview.localhost:{proxy.port}/"
    env = hook_env(
        redis_url,
        tmp_path,
        PROVISIONER_PREVIEW_PORT_BASE=str(base),
        PROVISIONER_PREVIEW_MAX="2",
        PROVISIONER_PREVIEW_URL=url,
    )
    before = (await health(prod.url), await health(stag.url))
    previews = PreviewStore.of(parts.store)

    # A feature branch: its own app on the staging server, seen only at its preview.
    feature = app_repo.commit("feature x")
    started = time.monotonic()
    pushed = app_repo.push("HEAD:refs/heads/Feature/X", env)
    push_to_preview_s = time.monotonic() - started
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: refs/heads/Feature/X -> preview feature-x" in pushed.stderr
    assert f"remote: preview feature-x is {feature[:8]}" in pushed.stderr, pushed.stderr
    assert f"http://feature-x.preview.localhost:{proxy.port}/" in pushed.stderr
    await eventually(lambda: "feature-x" in proxy.snapshots.snapshot.previews, 5, "the proxy to see it")
    assert await via_proxy(proxy, "feature-x.preview.localhost") == (
        200,
        {"status": "ok", "version": f"preview-{feature[:8]}"},
    )
    root = Path(stag.ref) / "branches" / "feature-x"
    assert (root / "current" / "REVISION").read_text() == feature + "\n"
    assert (await previews.preview("feature-x")).backends == (f"http://127.0.0.1:{base}",)
    # Production and staging answer as before, and the proxy's pools are theirs alone.
    assert (await health(prod.url), await health(stag.url)) == before
    snap = await parts.store.read_snapshot()
    assert (snap.production, snap.staging) == ((prod.url,), (stag.url,))
    print(f"push-to-preview: {push_to_preview_s:.1f}s")

    # A new push redeploys it on the same port: a second release beside the first.
    again = app_repo.commit("feature x, again")
    pushed = app_repo.push("HEAD:refs/heads/Feature/X", env)
    assert pushed.returncode == 0 and f"remote: preview feature-x is {again[:8]}" in pushed.stderr, (
        pushed.stderr
    )
    assert await via_proxy(proxy, "feature-x.preview.localhost") == (
        200,
        {"status": "ok", "version": f"preview-{again[:8]}"},
    )
    assert len(list((root / "releases").iterdir())) == 2
    assert (await previews.preview("feature-x")).backends == (f"http://127.0.0.1:{base}",)

    # A second branch takes the next port pair; a third is one too many (preview_max 2):
    # the one idle longest, feature-x, goes.
    assert app_repo.push("HEAD:refs/heads/other", env).returncode == 0
    assert (await previews.preview("other")).backends == (f"http://127.0.0.1:{base + 2}",)
    pushed = app_repo.push("HEAD:refs/heads/third", env)
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: preview feature-x removed: idle longest of 3 previews (preview_max 2)" in pushed.stderr
    assert set(await previews.previews()) == {"other", "third"}
    assert not root.exists()
    # feature-x's port pair was freed first, and third took it.
    assert (await previews.preview("third")).backends == (f"http://127.0.0.1:{base}",)
    await eventually(lambda: "feature-x" not in proxy.snapshots.snapshot.previews, 5, "feature-x to go")
    status, body = await via_proxy(proxy, "feature-x.preview.localhost")
    assert status == 404 and body == {
        "error": "no_preview",
        "message": "no preview named 'feature-x': see `python -m provisioner previews list`",
        "preview": "feature-x",
    }

    # Deleting a branch removes its environment: directories gone, app stopped, 404.
    other_port = base + 2
    assert listening(other_port)
    pushed = app_repo.push(":refs/heads/other", env)
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: refs/heads/other deleted: removing preview other" in pushed.stderr
    assert "remote: preview other removed: refs/heads/other deleted" in pushed.stderr
    assert not (Path(stag.ref) / "branches" / "other").exists() and not listening(other_port)
    await eventually(lambda: "other" not in proxy.snapshots.snapshot.previews, 5, "other to go")
    assert (await via_proxy(proxy, "other.preview.localhost"))[0] == 404

    # The CLI lists what is left and removes it by hand.
    cli_env = {**env, "REDIS_URL": redis_url}
    listed = provisioner_cli("previews", "list", "--json", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert list(rows) == ["third"] and rows["third"]["kind"] == "branch"
    assert rows["third"]["url"] == f"http://third.preview.localhost:{proxy.port}/"
    assert rows["third"]["branch"] == "third" and rows["third"]["sha"] == again
    text = provisioner_cli("previews", env=cli_env)
    assert text.returncode == 0 and text.stdout.startswith("third ") and "branch third" in text.stdout
    removed = provisioner_cli("previews", "rm", "third", env=cli_env)
    assert removed.returncode == 0 and "preview third removed: removed by hand" in removed.stdout
    assert not (Path(stag.ref) / "branches").exists() or not any((Path(stag.ref) / "branches").iterdir())
    assert dict(await previews.previews()) == {}
    missing = provisioner_cli("previews", "rm", "No_Such", env=cli_env)
    assert missing.returncode == 2 and "preview name 'No_Such' is not valid" in missing.stderr

    # Two branches with one slug (x_y and x/y are both x-y): two previews, and deleting
    # the second leaves the first serving its own commit.
    assert app_repo.push("HEAD:refs/heads/x_y", env).returncode == 0
    second = app_repo.commit("x/y")
    pushed = app_repo.push("HEAD:refs/heads/x/y", env)
    assert pushed.returncode == 0, pushed.stderr
    (name,) = set(await previews.previews()) - {"x-y"}
    assert name.startswith("x-y-") and f"remote: preview {name} is {second[:8]}" in pushed.stderr
    assert (await previews.preview("x-y")).branch == "x_y"
    pushed = app_repo.push(":refs/heads/x/y", env)
    assert pushed.returncode == 0 and f"remote: preview {name} removed" in pushed.stderr, pushed.stderr
    await eventually(lambda: name not in proxy.snapshots.snapshot.previews, 5, f"{name} to go")
    assert await via_proxy(proxy, "x-y.preview.localhost") == (
        200,
        {"status": "ok", "version": f"preview-{again[:8]}"},
    )
    assert (await health(prod.url), await health(stag.url)) == before
