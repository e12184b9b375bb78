"""What an operator sees: the admin endpoints, the CLI and the metrics of a rollout,
against an in-process proxy (or none) and a real Redis. Refusals are one JSON error
or one line and a non-zero exit, and change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from proxy.app import ProxyApp
from proxy.config import ConfigError, chat_webhook_url, load_config
from proxy.rollout import operate
from proxy.rollout.model import Plan
from state import StateStore
from state.rollouts import RolloutStore
from tests.support.proxy import proxy_config, run_cli
from tests.support.wait import eventually

TOKEN = "rollout-s3cret"  # noqa: S105  (the test deployment's admin token)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, proxy: ProxyApp, method: str, path: str, **kw: object
) -> tuple[int, dict[str, object]]:
    async with http.request(method, f"http://127.0.0.1:{proxy.admin_port}{path}", **kw) as reply:  # type: ignore[arg-type]
        assert reply.content_type == "application/json"
        return reply.status, await reply.json()


async def started(store: StateStore, plan: Plan) -> None:
    await store.add_backend("production", "http://127.0.0.1:9")
    await store.add_backend("staging", "http://127.0.0.1:10")
    await operate.start(RolloutStore(store.redis, store.keys, actor="test"), store, plan, "abc123")


async def test_the_admin_api_shows_and_steers_a_rollout(
    proxy: ProxyApp, store: StateStore, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, proxy, "GET", "/rollout")
    assert status == 200 and body["rollout"] is None
    status, body = await call(http, proxy, "POST", "/rollout/pause")
    assert status == 404 and body["error"] == "no_rollout"
    await started(store, Plan(steps=(10, 50), step_s=600))
    status, body = await call(http, proxy, "POST", "/rollout/pause", json={"reason": "lunch"})
    assert status == 200 and body["rollout"]["status"] == "paused"  # type: ignore[index]
    status, body = await call(http, proxy, "POST", "/rollout/abort")
    assert status == 200 and body["rollout"]["status"] == "aborted"  # type: ignore[index]
    assert (await store.read_snapshot()).weight == 0
    status, body = await call(http, proxy, "POST", "/rollout/resume")
    assert status == 409 and "does not resume" in str(body["message"])
    status, body = await call(http, proxy, "GET", "/rollout")
    assert body["rollout"]["status"] == "aborted"  # type: ignore[index]
    assert body["leader"] == proxy.instance_id


@pytest.mark.parametrize(
    "case",
    [
        ("/rollout/launch", {}, 404),
        ("/rollout/pause", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ("/rollout/pause", {"json": {"reason": 7}}, 400),
        ("/rollout/pause", {"json": {"reason": "x" * 501}}, 400),
    ],
)
async def test_bad_requests_are_short_json_errors_that_change_nothing(
    proxy: ProxyApp,
    store: StateStore,
    http: aiohttp.ClientSession,
    case: tuple[str, dict[str, object], int],
) -> None:
    path, kw, status = case
    await started(store, Plan(steps=(10, 50), step_s=600))
    got, body = await call(http, proxy, "POST", path, **kw)
    assert got == status and set(body) == {"error", "message"}
    _, after = await call(http, proxy, "GET", "/rollout")
    assert after["rollout"]["status"] == "running"  # type: ignore[index]


async def test_with_a_token_the_writes_need_it(
    redis_url: str, store: StateStore, http: aiohttp.ClientSession
) -> None:
    app = ProxyApp(proxy_config(redis_url, admin_token=TOKEN))
    await app.start()
    try:
        await started(store, Plan(steps=(10, 50), step_s=600))
        status, _ = await call(http, app, "POST", "/rollout/abort")
        assert status == 401
        status, _ = await call(
            http, app, "POST", "/rollout/abort", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 200
    finally:
        await app.stop()


async def test_the_metrics_show_the_step_the_weight_and_each_verdict(
    proxy: ProxyApp, store: StateStore, http: aiohttp.ClientSession
) -> None:
    # No traffic: the judge says INCONCLUSIVE and, with no extra wait allowed, the rollout holds.
    await started(store, Plan(steps=(10, 50), step_s=0.3, max_inconclusive=0))

    async def metrics() -> str:
        async with http.get(f"http://127.0.0.1:{proxy.admin_port}/metrics") as reply:
            return await reply.text()

    async def held() -> bool:
        return 'switchyard_rollout_verdict{metric="overall"} 0.0' in await metrics()

    await eventually(held, 10, "the held rollout's verdict in the metrics")
    text = await metrics()
    assert "switchyard_rollout_step 1.0" in text
    assert "switchyard_rollout_weight 10.0" in text
    assert 'switchyard_rollout_verdict{metric="errors"} 0.0' in text
    assert "switchyard_rollout_leader 1.0" in text


async def cli(redis_url: str, *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_cli, "rollout", *args, "--redis-url", redis_url)
    return done.returncode, done.stdout, done.stderr


async def test_the_cli_starts_shows_and_refuses_in_one_line(redis_url: str, store: StateStore) -> None:
    code, _out, err = await cli(redis_url, "start")
    assert code == 1 and err.strip().count("\n") == 0 and "staging has no backends" in err
    code, _out, err = await cli(redis_url, "pause")
    assert code == 1 and "no rollout yet" in err
    await store.add_backend("production", "http://127.0.0.1:9")
    await store.add_backend("staging", "http://127.0.0.1:10")
    code, out, err = await cli(redis_url, "start", "--steps", "5,50", "--step-s", "600")
    assert code == 0, err
    assert "running at step 1/2, weight 5%" in out
    assert (await store.read_snapshot()).weight == 5
    code, _out, err = await cli(redis_url, "start")
    assert code == 1 and "is running: abort it" in err
    code, out, _err = await cli(redis_url, "status", "--json")
    assert json.loads(out)["rollout"]["plan"]["steps"] == [5, 50]
    code, out, _err = await cli(redis_url, "abort", "--reason", "bad UI")
    assert code == 0 and "aborted" in out
    code, _out, err = await cli(redis_url, "resume")
    assert code == 1 and "does not resume" in err
    code, out, _err = await cli(redis_url, "status")
    assert "bad UI" in out and "weight   0%" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--steps", "5,ten"), "whole numbers"),
        (("--steps", "50,10"), "rise"),
        (("--steps", "100"), "below 100"),
        (("--step-s", "0"), "step-s"),
        (("--promote", "ship"), "invalid choice"),
    ],
)
async def test_bad_cli_input_exits_2_and_writes_nothing(
    redis_url: str, store: StateStore, args: tuple[str, ...], message: str
) -> None:
    await store.add_backend("staging", "http://127.0.0.1:10")
    code, _out, err = await cli(redis_url, "start", *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert await RolloutStore(store.redis, store.keys).read() is None


async def test_a_hand_corrupted_record_is_one_line_and_a_new_rollout_replaces_it(
    redis_url: str, store: StateStore, proxy: ProxyApp
) -> None:
    await store.add_backend("production", "http://127.0.0.1:9")
    await store.add_backend("staging", "http://127.0.0.1:10")
    await store.redis.set(store.keys.rollout, "{not json")
    code, _out, err = await cli(redis_url, "status")
    assert code == 1 and "not JSON" in err and "rollout start` replaces it" in err and err.count("\n") == 1
    code, _out, err = await cli(redis_url, "start", "--steps", "10,100", "--step-s", "600")
    assert code == 0, err
    # The proxy's controller lived through the bad record and leads the new rollout.
    await eventually(lambda: proxy.rollouts.controller.current is not None, 5, "the controller to read it")
    assert proxy.rollouts.controller.leading.is_set()


def test_the_chat_webhook_url_comes_from_the_environment_or_a_0600_file(tmp_path: Path) -> None:
    secret = tmp_path / "chat-url"
    secret.write_text("https://hooks.example.invalid/T0/B0/xyz\n")
    secret.chmod(0o600)
    config = load_config(env={"PROXY_ROLLOUT_CHAT_WEBHOOK_URL_FILE": str(secret)})
    assert chat_webhook_url(config) == "https://hooks.example.invalid/T0/B0/xyz"
    assert "xyz" not in repr(config)
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as refused:
        chat_webhook_url(config)
    assert "xyz" not in str(refused.value)
    both = {
        "PROXY_ROLLOUT_CHAT_WEBHOOK_URL": "https://a.invalid/",
        "PROXY_ROLLOUT_CHAT_WEBHOOK_URL_FILE": str(secret),
    }
    with pytest.raises(ConfigError, match="not both"):
        chat_webhook_url(load_config(env=both))


def test_a_proxy_with_an_unusable_webhook_file_does_not_start(redis_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "chat-url"
    secret.write_text("https://hooks.example.invalid/T0/B0/xyz\n")
    secret.chmod(0o644)
    done = run_cli(
        "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--redis-url", redis_url,
        env={"PROXY_ROLLOUT_CHAT_WEBHOOK_URL_FILE": str(secret)},
    )  # fmt: skip
    assert done.returncode == 2 and "chmod 600" in done.stderr and "xyz" not in done.stderr
    assert done.stderr.count("\n") == 1
