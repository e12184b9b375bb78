"""Release previews end to end: a push with deploy_hold holds its release at
`<short sha>.preview.localhost` (and says so), `deploy --discard` removes it; a
`--hold` serves the new commit at its preview while production serves the old one,
and `--switch` makes it live under a bounded load through `python -m proxy serve`
with not one request failed."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from provisioner.app import build_deployer
from provisioner.config import load_config
from tests.support.deploy import AppRepo, current, hook_env, install_hooks, provisioner_cli, releases, servers
from tests.support.load import Load
from tests.support.provisioner import BIN_DIR, PartsFactory
from tests.support.proxy import ProxyProcess
from tests.support.wait import eventually


async def version(port: int, host: str = "example.test") -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s,
        s.get(f"http://127.0.0.1:{port}/version", headers={"Host": host}) as r,
    ):
        return r.status, (await r.text()).strip()


async def status_is(port: int, host: str, status: int) -> bool:
    return (await version(port, host))[0] == status


def listening(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as s:
        return s.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_a_held_release_is_seen_at_its_preview_then_switched_live_under_load(
    app_repo: AppRepo,
    make_parts: PartsFactory,
    proxy_process: Callable[..., ProxyProcess],
    redis_url: str,
    tmp_path: Path,
) -> None:
    parts = await make_parts()
    store = parts.store
    a, b = await servers(parts, "production", "production")
    await store.set_weight(0)  # no staging pool here: every request is production's
    proxy = proxy_process(env={"PROXY_HEARTBEAT_INTERVAL_S": "0.2"})
    assert await version(proxy.port) == (200, "v1")
    url = f"http://{{name}}.preview.localhost:{proxy.port}/"

    # A push with deploy_hold: prepared on both servers, held at its preview, said so.
    install_hooks(app_repo, redis_url)
    env = hook_env(redis_url, tmp_path, PROVISIONER_DEPLOY_HOLD="true", PROVISIONER_PREVIEW_URL=url)
    pushed_sha = app_repo.commit("pushed and held")
    pushed = app_repo.push("main", env)
    assert pushed.returncode == 0, pushed.stderr
    held_url = f"http://{pushed_sha[:8]}.preview.localhost:{proxy.port}/"
    assert f"held on 2 server(s): preview {held_url}" in pushed.stderr, pushed.stderr
    assert f"deploy --env production --switch {pushed_sha[:8]}" in pushed.stderr
    await eventually(lambda: status_is(proxy.port, f"{pushed_sha[:8]}.preview.localhost", 200), 10, "preview")
    assert await version(proxy.port, f"{pushed_sha[:8]}.preview.localhost") == (200, f"v1-{pushed_sha[:8]}")
    assert await version(proxy.port) == (200, "v1")
    # While it is held, a plain deploy is refused; --discard stops and removes it.
    cli_env = {**env, "REDIS_URL": redis_url}
    refused = provisioner_cli(
        "deploy", "--env", "production", "--sha", pushed_sha, "--repo", str(app_repo.bare), env=cli_env
    )
    assert refused.returncode == 1 and f"holds release {pushed_sha[:8]}" in refused.stderr, refused.stderr
    backends = (await store.read_snapshot()).previews[pushed_sha[:8]]
    discarded = provisioner_cli("deploy", "--env", "production", "--discard", pushed_sha[:8], env=cli_env)
    assert discarded.returncode == 0, discarded.stderr
    assert f"preview {pushed_sha[:8]} removed" in discarded.stdout
    assert not any(listening(u) for u in backends)
    assert all(not any(n.endswith(pushed_sha[:8]) for n in releases(s)) for s in (a, b))
    await eventually(lambda: status_is(proxy.port, f"{pushed_sha[:8]}.preview.localhost", 404), 10, "404")

    # --hold: the new commit at its preview, the old one live; --switch under load.
    sha = app_repo.commit("held, then switched")
    (app_repo.bare / "hooks" / "post-receive").unlink()  # the commit only lands: held below
    assert app_repo.push("main").returncode == 0
    config = load_config(
        base={
            "redis_url": redis_url,
            "local_dir": str(tmp_path / "servers"),
            "local_python": str(BIN_DIR / "python"),
            "worker_id": "test",
            "health_timeout_s": 10.0,
            "preview_url": url,
        }
    )
    said: list[str] = []
    deploy = build_deployer(config, bin_dir=BIN_DIR, actor="test", out=said.append)
    try:
        preview = await deploy.deployer.hold("production", sha, app_repo.bare)
        host = f"{sha[:8]}.preview.localhost"
        assert await version(proxy.port, host) == (200, f"v1-{sha[:8]}"), said
        assert await version(proxy.port) == (200, "v1")
        load = Load(proxy.port, concurrency=4, path="/version", max_requests=1_000_000)
        load.start()
        try:
            await load.until(200)
            started = time.monotonic()
            record = await deploy.deployer.switch("production", sha[:8])
            switch_s = time.monotonic() - started
            await load.until(200)
        finally:
            result = await load.stop()
    finally:
        await deploy.close()
    assert record.result == "succeeded", f"{record.error}\n" + "\n".join(said)
    assert result.failures == [], result.summary()
    print(f"switch under load: {switch_s:.1f}s, {result.summary()}")
    for server in (a, b):
        assert current(server).name == preview.release
    seen: Counter[str] = Counter()
    for _ in range(20):
        seen[(await version(proxy.port))[1]] += 1
    assert seen == {f"v1-{sha[:8]}": 20}
    # Live now, where it was held: the preview is gone (404), the pool moved to the held
    # release's ports (nothing restarted), and the release before runs on, warm.
    await eventually(lambda: status_is(proxy.port, f"{sha[:8]}.preview.localhost", 404), 10, "404")
    assert (await store.read_snapshot()).production == tuple(sorted(preview.backends))
    assert all(listening(s.url) for s in (a, b))
    assert not [line for line in said if "drained from" in line], said
