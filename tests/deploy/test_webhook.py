"""The push webhook: `python -m provisioner webhook` as a process. A correctly signed push
event deploys; a bad signature, a replay, a malformed body, another branch deploy
nothing. A sender outside the allowed networks is refused."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from provisioner.deploy.signature import networks, signature
from provisioner.deploy.webhook import PushWebhook
from state import DeployStore, KeySpace, connect
from state.model import PoolName
from state.webhooks import WebhookMemory
from tests.support.deploy import (
    AppRepo,
    current,
    deploy_env,
    servers,
    serving_pid,
    start_webhook,
    stop_webhook,
)
from tests.support.ports import free_port
from tests.support.provisioner import PartsFactory
from tests.support.wait import eventually

SECRET = secrets.token_hex(8)


def event(ref: str, before: str, after: str) -> bytes:
    return json.dumps(
        {"ref": ref, "before": before, "after": after, "repository": {"full_name": "t/app"}}
    ).encode()


def forced(ref: str, before: str, after: str) -> bytes:
    return json.dumps({**json.loads(event(ref, before, after)), "forced": True}).encode()


def headers(body: bytes, secret: str, delivery: str, kind: str = "push") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": kind,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature(secret, body),
    }


async def post(url: str, body: bytes, head: dict[str, str]) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=head) as response:
        return response.status, await response.json()


@pytest.fixture
async def deploys(redis_url: str) -> AsyncIterator[DeployStore]:
    client = connect(redis_url)
    yield DeployStore(client, KeySpace())
    await client.aclose()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_signed_push_deploys_and_nothing_else_does(
    app_repo: AppRepo, make_parts: PartsFactory, deploys: DeployStore, redis_url: str, tmp_path: Path
) -> None:
    parts = await make_parts()
    (server,) = await servers(parts, "production")
    before = current(server)
    old = app_repo.commit("before")
    sha = app_repo.commit("pushed to the code host")
    assert app_repo.push("main").returncode == 0

    secret = "whsec-" + secrets.token_hex(16)
    port = free_port()
    # A marker in the Redis URL stands for a password in it: neither it nor the secret
    # may reach the apps the deploy starts (nor Ansible's environment, which they inherit).
    marker = "sy-" + secrets.token_hex(6)
    env = deploy_env(
        redis_url,
        tmp_path,
        REDIS_URL=f"{redis_url}?client_name={marker}",
        PROVISIONER_PUSH_WEBHOOK_SECRET=secret,
        PROVISIONER_DEPLOY_REPO=str(app_repo.bare),
        PROVISIONER_BRANCH_PREVIEWS="false",  # test_webhook_previews.py's
    )
    proc = start_webhook(env, port, tmp_path / "webhook.log")
    url = f"http://127.0.0.1:{port}/push"
    try:
        good = event("refs/heads/main", old, sha)
        delivery = str(uuid.uuid4())

        # Refused, and nothing runs: no signature, a wrong one, one over another body.
        for head in (
            {**headers(good, secret, delivery), "X-Hub-Signature-256": ""},
            headers(good, "not the secret", delivery),
            headers(good + b" ", secret, delivery),
        ):
            assert (await post(url, good, head))[0] == 401
        status, answer = await post(url, good, headers(good, "wrong", delivery))
        assert status == 401 and answer["error"] == "bad_signature"
        # Signed but malformed: not JSON, no ref, a short sha, no delivery id.
        for body in (
            b"{",
            json.dumps({"before": old, "after": sha}).encode(),
            event("refs/heads/main", old, sha[:7]),
        ):
            status, answer = await post(url, body, headers(body, secret, str(uuid.uuid4())))
            assert status == 400 and answer["error"] == "malformed", answer
        status, _ = await post(url, good, {**headers(good, secret, delivery), "X-GitHub-Delivery": ""})
        assert status == 400
        # Signed and well-formed, but nothing to deploy.
        feature = event("refs/heads/feature", old, sha)
        status, answer = await post(url, feature, headers(feature, secret, str(uuid.uuid4())))
        assert status == 200 and answer["deploying"] is None
        status, answer = await post(url, good, headers(good, secret, str(uuid.uuid4()), kind="ping"))
        assert (status, answer) == (200, {"ok": "pong"})

        # The real thing: 202 at once, the deploy in the background.
        status, answer = await post(url, good, headers(good, secret, delivery))
        assert (status, answer) == (202, {"deploying": "production", "sha": sha})
        # The same delivery again is a replay: refused, not run twice.
        status, answer = await post(url, good, headers(good, secret, delivery))
        assert status == 403 and answer["error"] == "replayed"
        # So is the same signed body under a new delivery id (the signature does not cover it).
        status, answer = await post(url, good, headers(good, secret, str(uuid.uuid4())))
        assert status == 403 and answer["error"] == "replayed", answer

        await eventually(
            lambda: deploys.history("production"),
            120,
            "the deploy to be recorded",
            interval_s=0.1,
            detail=lambda: ": " + (tmp_path / "webhook.log").read_text(),
        )
        (record,) = await deploys.history("production")
        assert record.result == "succeeded" and record.sha == sha, record.error
        # Signed pushes, never seen before, that would take production back: the deployed
        # commit again, an older one, an older one force-pushed (webhook_allow_force is off).
        for body, why in (
            (event("refs/heads/main", old, sha) + b"\n", f"{sha[:8]} is the deployed commit"),
            (event("refs/heads/main", sha, old), f"{old[:8]} is older than the deployed {sha[:8]}"),
            (forced("refs/heads/main", sha, old), "a force push, and webhook_allow_force is off"),
        ):
            status, answer = await post(url, body, headers(body, secret, str(uuid.uuid4())))
            assert status == 409 and answer["error"] == "stale" and why in str(answer["message"]), answer
        assert len(await deploys.history("production")) == 1
        assert current(server) != before and (current(server) / "REVISION").read_text() == sha + "\n"
        pid = serving_pid(server)
        assert pid is not None
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert marker.encode() not in environ and secret.encode() not in environ
    finally:
        code = stop_webhook(proc, 30)
    output = (tmp_path / "webhook.log").read_text()
    assert code == 0, output
    assert secret not in output
    assert f"delivery {delivery} replayed" in output


async def serve(aiohttp_server: AiohttpServer, hook: PushWebhook) -> tuple[TestServer, str]:
    server = await aiohttp_server(hook.app(), access_log=None)
    return server, f"http://127.0.0.1:{server.port}/push"


async def test_senders_outside_the_networks_and_big_bodies_are_refused(
    aiohttp_server: AiohttpServer, deploys: DeployStore
) -> None:
    started: list[str] = []

    async def start(env: PoolName, sha: str, forced: bool) -> None:
        started.append(sha)

    async def no_order(env: PoolName, sha: str, forced: bool) -> str | None:
        return None

    def hook(allowed: list[str]) -> PushWebhook:
        return PushWebhook(
            secret=SECRET,
            allowed=networks(allowed),
            replay_ttl_s=60,
            max_body_bytes=1024,
            deploys=deploys,
            memory=WebhookMemory(deploys.redis, deploys.keys),
            order=no_order,
            start_deploy=start,
        )

    body = event("refs/heads/main", "a" * 40, "b" * 40)
    big = b"x" * 2048
    server, url = await serve(aiohttp_server, hook(["10.0.0.0/8"]))
    try:
        status, answer = await post(url, body, headers(body, SECRET, "d-1"))
        assert status == 403 and answer["error"] == "forbidden" and "127.0.0.1" in str(answer["message"])
    finally:
        await server.close()
    server, url = await serve(aiohttp_server, hook(["127.0.0.0/8"]))
    try:
        status, answer = await post(url, big, headers(big, SECRET, "d-2"))
        assert status == 413 and answer["error"] == "too_large"
        status, answer = await post(url, body, headers(body, "not s", "d-3"))
        assert status == 401
    finally:
        await server.close()
    assert started == []
    # Refused requests were not remembered: the ids are still fresh.
    for delivery in ("d-1", "d-2", "d-3"):
        assert await deploys.remember_delivery(delivery, 60)
