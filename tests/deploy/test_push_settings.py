"""A `git push` deploys with the provisioner's own settings file: hooks/install records
it, post-receive passes it, and the password of a password-protected redis-server comes
from the 0600 file it names, never from argv, git config or the pusher's environment.
The dynamic inventory reads the same file."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from state import DeployStore, KeySpace, ServerRecord, ServerRegistry, connect
from tests.support import ROOT
from tests.support.deploy import AppRepo, current, deploy_env, releases, servers
from tests.support.provisioner import BIN_DIR, PartsFactory
from tests.support.redis_server import RedisServer

PASSWORD = "pw/" + secrets.token_urlsafe(12)  # a '/' as `openssl rand -base64` gives


@pytest.fixture
def locked_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    client = redis.Redis(port=server.port)
    client.config_set("requirepass", PASSWORD)
    client.close()
    yield server
    server.cleanup()


def settings_file(tmp_path: Path, port: int, **extra: object) -> Path:
    secret = tmp_path / "redis.pass"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    values: dict[str, object] = {
        "redis_url": f"redis://127.0.0.1:{port}/0",
        "redis_password_file": str(secret),
        "local_dir": str(tmp_path / "servers"),
        "worker_id": "pushed",
        "health_timeout_s": 10,
        "deploy_keep_releases": 1,
        "deploy_keep_warm": 0,  # as 1 would keep the first release running, and so unpruned
        **extra,
    }
    toml = tmp_path / "provisioner.toml"
    toml.write_text("[provisioner]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return toml


def bare_env(tmp_path: Path) -> dict[str, str]:
    """What `git push` runs with: no REDIS_URL, no PROVISIONER_*; the hook's Python is a
    wrapper that writes down its arguments, then runs the real one."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "argv.log"}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    env = deploy_env("unused", tmp_path, SWITCHYARD_PYTHON=str(wrapper))
    for name in (
        "REDIS_URL",
        "PROVISIONER_LOCAL_DIR",
        "PROVISIONER_HEALTH_TIMEOUT_S",
        "PROVISIONER_WORKER_ID",
    ):
        env.pop(name, None)
    return env


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_push_uses_the_provisioner_settings_file_and_a_password_file(
    app_repo: AppRepo, make_parts: PartsFactory, locked_redis: RedisServer, tmp_path: Path
) -> None:
    url = f"redis://:{PASSWORD.replace('/', '%2F')}@127.0.0.1:{locked_redis.port}/0"
    parts = await make_parts(redis_url=url)
    (server,) = await servers(parts, "production")
    toml = settings_file(tmp_path, locked_redis.port)
    installed = subprocess.run(
        [str(ROOT / "hooks" / "install"), "--config", str(toml), str(app_repo.bare)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr

    sha = app_repo.commit("pushed with the settings file")
    pushed = app_repo.push("main", env=bare_env(tmp_path))
    assert pushed.returncode == 0, pushed.stderr
    assert f"deploy of {sha[:8]} to production succeeded" in pushed.stderr, pushed.stderr
    assert f"{server.id}: drained from production" in pushed.stderr  # deploy_keep_warm = 0, from the file

    client = connect(url)
    try:
        (record,) = await DeployStore(client, KeySpace()).history("production")
    finally:
        await client.aclose()
    assert (record.result, record.sha, record.by) == ("succeeded", sha, "post-receive:pushed")
    assert (current(server) / "REVISION").read_text() == sha + "\n"
    # deploy_keep_releases = 1 from the file: the first release was pruned.
    assert releases(server) == [current(server).name]
    argv = (tmp_path / "argv.log").read_text()
    assert f"--config {toml}" in argv and PASSWORD not in argv
    config = subprocess.run(
        ["git", "-C", str(app_repo.bare), "config", "--list"], capture_output=True, text=True, check=True
    )
    assert PASSWORD not in config.stdout and PASSWORD not in pushed.stderr


async def test_the_inventory_reaches_droplets_with_the_settings_file(
    locked_redis: RedisServer, tmp_path: Path
) -> None:
    url = f"redis://:{PASSWORD.replace('/', '%2F')}@127.0.0.1:{locked_redis.port}/0"
    client = connect(url)
    now = time.time()
    try:
        record = ServerRecord(
            "sy-prod-dddd", "production", "digitalocean", "active", now, now, "t",
            ref="424242", url="http://203.0.113.7:8123", address="203.0.113.7",
        )  # fmt: skip
        await ServerRegistry(client, KeySpace()).put(record)
    finally:
        await client.aclose()
    key = tmp_path / "id_deploy"
    toml = settings_file(
        tmp_path,
        locked_redis.port,
        ssh_user="deploy",
        ssh_private_key_file=str(key),
        remote_app_dir="/opt/shop",
        remote_app_port=8123,
    )
    env = bare_env(tmp_path)
    env.update(SWITCHYARD_PROVISIONER_CONFIG=str(toml), ANSIBLE_HOME=str(tmp_path / "ansible"))
    done = subprocess.run(
        [str(BIN_DIR / "ansible-inventory"), "-i", str(ROOT / "playbooks/inventory/switchyard.py"), "--list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    host = json.loads(done.stdout)["_meta"]["hostvars"]["sy-prod-dddd"]
    assert (host["ansible_user"], host["ansible_ssh_private_key_file"]) == ("deploy", str(key))
    assert host["switchyard_app_dir"] == "/opt/shop/sy-prod-dddd" and host["switchyard_app_port"] == 8123
