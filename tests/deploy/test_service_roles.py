"""The proxy, monitor, common and redis roles, run for real by ansible-runner against
localhost in the mode that only renders files (no systemd, no apt here) into a temporary
root. The Redis password comes from the environment and reaches the rendered files, never
Ansible's output or the run's artifacts."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from redis.connection import parse_url

from provisioner.configure import PLAYBOOKS_DIR
from tests.support.playbooks import files_containing, output, run


@pytest.fixture
def password(tmp_path: Path) -> tuple[str, Path]:
    """The Redis password in a file of its own. Not in the environment: ansible-runner
    writes its whole environment into the run's artifacts (artifacts/<id>/command)."""
    value = "pw-" + secrets.token_hex(16)
    secret = tmp_path / "secret" / "redis-password"
    secret.parent.mkdir()
    secret.write_text(value + "\n")
    secret.chmod(0o600)
    return value, secret


@pytest.mark.slow
def test_the_proxy_playbook_renders_the_services_and_keeps_the_password_secret(
    password: tuple[str, Path], tmp_path: Path
) -> None:
    secret, secret_file = password
    done = run(
        "proxy.yml",
        "proxy",
        tmp_path,
        switchyard_redis_host="10.0.0.5",
        switchyard_proxy_workers=3,
        switchyard_redis_password_file=str(secret_file),
    )
    assert done.status == "successful", output(done)
    root = tmp_path / "root"
    unit = (root / "etc/systemd/system/switchyard-proxy.service").read_text()
    assert (
        "ExecStart=/opt/switchyard/.venv/bin/python -m proxy serve --listen 0.0.0.0:80"
        " --admin-listen 127.0.0.1:8081 --workers 3\n" in unit
    )
    for line in (
        "User=switchyard",
        "EnvironmentFile=/etc/switchyard/switchyard.env",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "WantedBy=multi-user.target",
    ):
        assert line + "\n" in unit
    monitor = (root / "etc/systemd/system/switchyard-monitor.service").read_text()
    assert "ExecStart=/opt/switchyard/.venv/bin/python -m monitor run --role proxy --name h1\n" in monitor
    env_file = root / "etc/switchyard/switchyard.env"
    assert f"REDIS_URL=redis://:{secret}@10.0.0.5:6379/0\n" in env_file.read_text()
    assert env_file.stat().st_mode & 0o777 == 0o600
    # The only file holding the password is the one meant to: not Ansible's output, not
    # the run's artifacts (events, environment, extravars).
    assert sorted(files_containing(tmp_path, secret)) == sorted([env_file, secret_file])
    assert secret not in output(done)

    # An app server of the staging pool gets the monitor with the staging role.
    done = run(
        "monitor.yml",
        "staging",
        tmp_path / "app",
        switchyard_app_pool="staging",
        switchyard_redis_password_file=str(secret_file),
    )
    assert done.status == "successful", output(done)
    monitor = (tmp_path / "app/root/etc/systemd/system/switchyard-monitor.service").read_text()
    assert "-m monitor run --role staging --name h1\n" in monitor


@pytest.mark.slow
def test_the_redis_playbook_binds_the_private_address_with_the_password(
    password: tuple[str, Path], tmp_path: Path
) -> None:
    secret, secret_file = password
    done = run(
        "redis.yml",
        "redis",
        tmp_path,
        switchyard_redis_bind="10.0.0.5",
        switchyard_redis_password_file=str(secret_file),
    )
    assert done.status == "successful", output(done)
    conf_file = tmp_path / "root/etc/redis/redis.conf"
    conf = conf_file.read_text().splitlines()
    for line in (
        "bind 127.0.0.1 10.0.0.5",
        "protected-mode yes",
        f"requirepass {secret}",
        "appendonly yes",
    ):
        assert line in conf
    assert conf_file.stat().st_mode & 0o777 == 0o640
    assert sorted(files_containing(tmp_path, secret)) == sorted([conf_file, secret_file])

    # A public address, or every address, is refused before anything is written.
    for bind in ("0.0.0.0", "203.0.113.7"):
        refused = run(
            "redis.yml",
            "redis",
            tmp_path / bind,
            switchyard_redis_bind=bind,
            switchyard_redis_password_file=str(secret_file),
        )
        assert refused.status == "failed"
        assert "bind=" + bind + " must be the host's private-network address" in output(refused)
        assert not (tmp_path / bind / "root").exists()


@pytest.mark.slow
def test_a_short_or_missing_password_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SWITCHYARD_REDIS_PASSWORD", raising=False)
    done = run("redis.yml", "redis", tmp_path, switchyard_redis_bind="10.0.0.5")
    assert done.status == "failed"
    assert "export SWITCHYARD_REDIS_PASSWORD" in output(done)
    assert not (tmp_path / "root").exists()


def test_the_site_playbooks_and_roles_exist() -> None:
    # Each is syntax-checked by tests/provisioner/test_configure.py, which takes every *.yml.
    assert {p.name for p in PLAYBOOKS_DIR.glob("*.yml")} >= {
        "proxy.yml",
        "production.yml",
        "staging.yml",
        "redis.yml",
        "rollback.yml",
        "monitor.yml",
    }
    assert {p.name for p in (PLAYBOOKS_DIR / "roles").iterdir()} >= {
        "common",
        "app",
        "proxy",
        "monitor",
        "redis",
    }


@pytest.mark.slow
def test_a_password_with_reserved_characters_survives_the_redis_url(tmp_path: Path) -> None:
    """`openssl rand -base64` passwords hold "/", which Jinja's urlencode leaves as it is."""
    secret = "a/b@c:d%e#f+g=h/" + secrets.token_hex(4)
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    done = run(
        "monitor.yml",
        "production",
        tmp_path,
        switchyard_redis_host="10.0.0.5",
        switchyard_redis_password_file=str(secret_file),
        switchyard_key_prefix="shop-b:",
    )
    assert done.status == "successful", output(done)
    lines = (tmp_path / "root/etc/switchyard/switchyard.env").read_text().splitlines()
    # Another deployment's prefix: the monitor reports under it (the proxy, on its hosts).
    assert {"MONITOR_KEY_PREFIX=shop-b:", "PROXY_KEY_PREFIX=shop-b:"} <= set(lines)
    line = next(
        x
        for x in (tmp_path / "root/etc/switchyard/switchyard.env").read_text().splitlines()
        if x.startswith("REDIS_URL=")
    )
    url = line.removeprefix("REDIS_URL=")
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("10.0.0.5", 6379, "/0")
    assert unquote(parts.password or "") == secret
    parsed = parse_url(url)
    assert (parsed["host"], parsed["port"], parsed["password"]) == ("10.0.0.5", 6379, secret)


def handlers_run(done: Any) -> set[str]:
    """The handlers a run notified (they run at the end of the play)."""
    return {str(e["event_data"]["handler"]) for e in done.events if e.get("event") == "playbook_on_notify"}


@pytest.mark.slow
def test_rerunning_the_proxy_playbook_restarts_what_changed(
    password: tuple[str, Path], tmp_path: Path
) -> None:
    _, secret_file = password
    first = run("proxy.yml", "proxy", tmp_path, switchyard_redis_password_file=str(secret_file))
    assert first.status == "successful", output(first)
    again = run("proxy.yml", "proxy", tmp_path, switchyard_redis_password_file=str(secret_file))
    assert again.status == "successful", output(again)
    assert handlers_run(again) == set()
    # A new password reaches only the env file: both services must restart to read it.
    secret_file.write_text("pw-" + secrets.token_hex(16))
    changed = run("proxy.yml", "proxy", tmp_path, switchyard_redis_password_file=str(secret_file))
    assert changed.status == "successful", output(changed)
    assert handlers_run(changed) == {"proxy : proxy | restart", "monitor : monitor | restart"}
