"""Chat notices: the Slack-shaped message with plain values, then delivery to a stand-in
incoming webhook on 127.0.0.1 (retried, never failing what it reports), then one message
per deploy from the real `deploy` command."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from provisioner.chat import ChatNotifier, chat_message
from tests.support.backends import Backend
from tests.support.deploy import AppRepo, deploy_env, servers
from tests.support.ports import free_port
from tests.support.provisioner import PartsFactory, provisioner_cli

SHA = "1a2b3c4d" + "e" * 32


def _attachment(message: dict[str, object]) -> dict[str, Any]:
    attachments = message["attachments"]
    assert isinstance(attachments, list) and len(attachments) == 1
    return attachments[0]  # type: ignore[no-any-return]


def _fields(message: dict[str, object]) -> dict[str, str]:
    return {f["title"]: f["value"] for f in _attachment(message)["fields"]}


def test_a_deploy_is_text_and_one_attachment_with_sha_who_and_result() -> None:
    done = chat_message(
        "deploy.succeeded", {"env": "production", "sha": SHA, "seconds": 9.5}, by="post-receive:w", at=5.9
    )
    assert done["text"] == "deploy of 1a2b3c4d to production succeeded in 9.5s"
    attachment = _attachment(done)
    assert (
        attachment["color"] == "good" and attachment["title"] == "deploy.succeeded" and attachment["ts"] == 5
    )
    assert _fields(done) == {"sha": SHA, "by": "post-receive:w", "result": "succeeded"}
    failed = chat_message(
        "deploy.failed",
        {"env": "staging", "sha": SHA, "failed_host": "sy-stag-1", "failed_task": "app | check it"},
        by="ops",
        at=0,
    )
    assert failed["text"] == "deploy of 1a2b3c4d to staging failed at sy-stag-1, task 'app | check it'"
    assert _fields(failed)["failed task"] == "app | check it"
    assert _attachment(failed)["color"] == "danger"
    no_server = chat_message("rollback.failed", {"env": "staging", "error": "no server"}, by="ops", at=0)
    assert no_server["text"] == "rollback of ? to staging failed: no server"
    assert _fields(no_server)["failed task"] == "no server" and _fields(no_server)["sha"] == "-"


def test_a_preview_carries_its_url() -> None:
    url = "http://feature-x.preview.localhost:8080/"
    made = chat_message(
        "preview.deployed",
        {"preview": "feature-x", "sha": SHA, "branch": "feature/x", "url": url},
        by="w",
        at=0,
    )
    assert made["text"] == f"preview feature-x is 1a2b3c4d of feature/x: {url}"
    assert _fields(made) == {"sha": SHA, "by": "w", "result": "deployed", "preview": url}
    gone = chat_message("preview.removed", {"preview": "feature-x", "why": "branch deleted"}, by="w", at=0)
    assert gone["text"] == "preview feature-x removed: branch deleted"


async def test_a_receiver_down_a_moment_gets_the_message_once_and_logs_hide_its_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    room = Backend("chat", fail_first=2, keep_bodies=True)
    await room.start()
    try:
        url = room.url + "/services/T000/B000/s3cr3t-token"
        notifier = ChatNotifier("", None, url, by="ops")
        with caplog.at_level(logging.WARNING, "provisioner.notify"):
            assert await notifier.notify("deploy.succeeded", {"env": "production", "sha": SHA, "seconds": 1})
        assert len(room.bodies) == 3  # two 500s, then delivered
        assert json.loads(room.bodies[-1])["text"] == "deploy of 1a2b3c4d to production succeeded in 1s"
        assert room.seen[-1]["raw_path"] == "/services/T000/B000/s3cr3t-token"
        assert "answered 500 (try 1)" in caplog.text and "s3cr3t" not in caplog.text
        # Events that are not deploys (a server added by the autoscaler) are not chat's.
        assert await notifier.notify("server.added", {"server": "x"}) and len(room.bodies) == 3
    finally:
        await room.stop()


async def test_an_unreachable_or_refusing_receiver_is_reported_never_raised() -> None:
    dead = ChatNotifier("", None, f"http://127.0.0.1:{free_port()}/hook", by="ops")
    assert not await dead.notify("deploy.failed", {"env": "staging", "error": "x"})
    room = Backend("chat", fail_first=10, keep_bodies=True)
    await room.start()
    try:
        # A 4xx (a revoked hook) is final: one try. Here a 500 each time: three tries.
        assert not await ChatNotifier("", None, room.url + "/h", by="ops").notify("rollback.failed", {})
        assert len(room.bodies) == 3
    finally:
        await room.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_each_deploy_posts_one_message_and_the_url_may_come_from_a_0600_file(
    make_parts: PartsFactory, redis_url: str, tmp_path: Path
) -> None:
    app_repo = AppRepo(tmp_path)
    parts = await make_parts()
    (prod,) = await servers(parts, "production")
    room = Backend("chat", keep_bodies=True)
    await room.start()
    try:
        hook = room.url + "/services/T1/B1/token"
        sha = app_repo.commit("chatty")
        assert app_repo.push("HEAD:refs/heads/main").returncode == 0  # no hook there: it only lands
        env = deploy_env(redis_url, tmp_path, PROVISIONER_CHAT_WEBHOOK_URL=hook)
        code, out, err = await provisioner_cli(
            "deploy", "--env", "production", "--sha", sha, "--repo", str(app_repo.bare), env=env
        )
        assert code == 0, err
        (body,) = room.bodies
        message = json.loads(body)
        assert message["text"].startswith(f"deploy of {sha[:8]} to production succeeded in ")
        assert _fields(message) == {"sha": sha, "by": "provisioner:test", "result": "succeeded"}
        assert hook not in out + err

        # From a 0600 file: a failed deploy (no staging server) is one message too.
        secret = tmp_path / "chat-url"
        secret.write_text(hook + "\n")
        os.chmod(secret, 0o600)
        env = deploy_env(redis_url, tmp_path, PROVISIONER_CHAT_WEBHOOK_URL_FILE=str(secret))
        code, out, err = await provisioner_cli(
            "deploy", "--env", "staging", "--sha", sha, "--repo", str(app_repo.bare), env=env
        )
        assert code == 1 and "no server of the staging pool" in err
        assert len(room.bodies) == 2
        failed = json.loads(room.bodies[1])
        assert failed["text"].startswith(
            f"deploy of {sha[:8]} to staging failed: no server of the staging pool"
        )
        assert _attachment(failed)["color"] == "danger"

        # A file others may read is refused, naming the setting, never the URL.
        os.chmod(secret, 0o644)
        code, out, err = await provisioner_cli(
            "deploy", "--env", "staging", "--sha", sha, "--repo", str(app_repo.bare), env=env
        )
        assert code == 2 and "chat_webhook_url_file" in err and "chmod 600" in err
        assert hook not in err and len(room.bodies) == 2
    finally:
        await room.stop()
    assert prod.url
