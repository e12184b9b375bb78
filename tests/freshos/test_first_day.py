"""A new user's first day, end to end, on a fresh-OS droplet.

`python -m provisioner up --provider digitalocean` (a subprocess, with a settings
file and the secrets in its environment) against the stand-in API, whose droplet is
a freshly booted Debian: configured from scratch over SSH (python3-venv, the app as a
systemd service, the firewall, the monitor reporting to Redis), healthy, in the
production pool and served by a running `proxy serve`. Then a `git push` deploys a
new commit to it (kept warm: onto its second port, the release before running on);
a reboot and a killed app come back by themselves; a second run of
the playbook changes nothing and `--check` passes; a stranger's address is refused at
the app's port; the Redis password is in none of Ansible's artifacts. Last, a staging
droplet, and a branch pushed to it: its preview under units and a firewall of its own,
and its deletion removing them and nothing of staging's.

Only loopback and the addresses of the namespaces and links this test made are contacted.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from provisioner.app import configurer, host_vars_from
from provisioner.config import load_config
from provisioner.configure import PLAYBOOKS, PLAYBOOKS_DIR
from provisioner.deploy.commits import CommitSource
from state import DeployStore, HostStore, KeySpace, ServerRegistry, connect
from tests.freshos.conftest import TOKEN, Booted
from tests.freshos.droplet import Droplet
from tests.freshos.hostaddr import HostAddress, claim
from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support import ROOT
from tests.support.deploy import AppRepo
from tests.support.procs import run
from tests.support.proxy import ProxyProcess
from tests.support.redis_server import RedisServer
from tests.support.wait import eventually

pytestmark = pytest.mark.freshos

FINGERPRINT = "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"
PROXY_ADDRESS = "192.0.2.10"  # TEST-NET-1: listed in the firewall, never contacted
APP_PORT = 8000
UNIT = f"switchyard-app@{APP_PORT}.service"
BRANCH_PORT = 9200  # preview_port_base: the first branch's port


class Steps:
    """Seconds per step of the test, printed at the end (pass or fail)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - started

    def report(self) -> str:
        return "\n".join(f"  {name:<34}{s:7.1f} s" for name, s in self.seconds.items())


@pytest.fixture
def controller() -> Iterator[HostAddress]:
    """The controller's private address: where the droplets reach its Redis."""
    address = claim()
    yield address
    address.release()


@pytest.fixture
def redis_for_droplets(controller: HostAddress) -> Iterator[RedisServer]:
    server = RedisServer(bind=("127.0.0.1", controller.ip), password=secrets.token_hex(16))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def running_proxy(redis_for_droplets: RedisServer) -> AsyncIterator[ProxyProcess]:
    # "": no --redis-url, so the password stays out of its argv (REDIS_URL instead).
    proxy = ProxyProcess("", env={"REDIS_URL": redis_for_droplets.url})
    await asyncio.to_thread(proxy.start)
    yield proxy
    await asyncio.to_thread(proxy.cleanup)


def toml(section: str, values: dict[str, object]) -> str:
    # JSON's strings, numbers and lists of strings are TOML's too.
    return f"[{section}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PROVISIONER_", "GIT_", "DIGITALOCEAN_")) and k != "REDIS_URL"
    }
    return env | extra


async def curl(url: str) -> tuple[int, str]:
    code, out, err = await run("curl", "-sS", "--max-time", "10", url, env=clean_env(), timeout_s=20)
    return code, out or err


def ok(droplet: Droplet, command: str) -> str:
    done = droplet.ssh(command, timeout_s=60)
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


async def running_proxy_get(port: int, host: str) -> object:
    code, body, err = await run(
        *("curl", "-sS", "--max-time", "10", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/health"),
        env=clean_env(),
        timeout_s=20,
    )
    return json.loads(body) if code == 0 else err


async def health(url: str) -> dict[str, object] | None:
    code, body = await curl(url + "/health")
    try:
        return json.loads(body) if code == 0 else None
    except ValueError:
        return None


@pytest.mark.timeout(1200)
async def test_a_new_users_first_day(  # noqa: PLR0917 (fixtures)
    fresh_do: FakeDigitalOcean,
    booted: Booted,
    root_key: tuple[Path, Path],
    controller: HostAddress,
    redis_for_droplets: RedisServer,
    running_proxy: ProxyProcess,
    tmp_path: Path,
) -> None:
    steps = Steps()
    redis = redis_for_droplets
    (tmp_path / "repo").mkdir()
    repo = AppRepo(tmp_path / "repo")
    artifacts = tmp_path / "artifacts"
    settings: dict[str, object] = {
        "provider": "digitalocean",
        "digitalocean_ssh_keys": [FINGERPRINT],
        "digitalocean_image": "debian-12-x64",
        "ssh_private_key_file": str(root_key[1]),
        "remote_app_port": APP_PORT,
        "remote_redis_host": controller.ip,
        "proxy_addresses": [PROXY_ADDRESS],
        "deploy_repo": str(repo.bare),
        "ansible_artifacts_dir": str(artifacts),
        "poll_interval_s": 0.5,
        "health_timeout_s": 60.0,
        "configure_timeout_s": 900.0,
    }
    settings_file = tmp_path / "provisioner.toml"
    settings_file.write_text(toml("provisioner", settings))
    secrets_env = {
        "REDIS_URL": redis.url,
        "DIGITALOCEAN_TOKEN": TOKEN,
        "DIGITALOCEAN_END_POINT": fresh_do.url,
    }
    client = connect(redis.url)
    keys = KeySpace()

    async def up(pool: str) -> tuple[int, str, str]:
        argv = ("-m", "provisioner", "up", "--provider", "digitalocean", "--pool", pool)
        env = clean_env(**secrets_env)
        return await run(sys.executable, *argv, "--config", str(settings_file), env=env, timeout_s=1000)

    try:
        # 1. A server from nothing.
        with steps.step("provisioner up"):
            code, out, err = await up("production")
        assert code == 0, f"provisioner up failed ({code}):\n{out}\n{err[-6000:]}"
        server_id, url = out.strip().split("\t")
        [record] = await ServerRegistry(client, keys).all()
        assert (record.id, record.state, record.url) == (server_id, "active", url)
        droplet = booted.droplets[server_id]
        assert url == f"http://{droplet.ip}:{APP_PORT}"
        timings = dict(record.timings)
        boot_s = timings["create"] + timings["active"] + timings["reachable"]
        print(
            f"\nprovisioner's steps on {server_id}: " + " ".join(f"{k}={v:.1f}s" for k, v in timings.items())
        )

        # It is served through the running proxy, and its monitor reports to Redis.
        proxied = f"http://127.0.0.1:{running_proxy.port}"
        with steps.step("served through the proxy"):
            await eventually(
                lambda: _version_is(proxied, "v1"), 30, "the proxy to serve the droplet's app", interval_s=0.5
            )
        code, page = await curl(proxied + "/")
        assert code == 0 and "v1" in page, page
        with steps.step("monitor reports to Redis"):
            hosts = HostStore(client, keys)
            await eventually(
                lambda: _reported(hosts, server_id), 60, "the droplet's monitor in Redis", interval_s=0.5
            )
        assert ok(droplet, f"systemctl is-active switchyard-monitor.service {UNIT}").split() == [
            "active",
            "active",
        ]
        assert ok(droplet, f"systemctl show -p User --value {UNIT}") == "switchyard"
        assert ok(droplet, "stat -c %a /etc/switchyard/switchyard.env") == "600"
        ruleset = ok(droplet, "nft list table inet switchyard_app")
        assert PROXY_ADDRESS in ruleset and droplet.host_ip in ruleset and controller.ip not in ruleset

        # 2. A push deploys a new commit, with the same settings.
        sha = repo.commit("the first day's change")
        push_env = clean_env(REDIS_URL=redis.url)
        install = [str(ROOT / "hooks" / "install")]
        if "switchyard.config" in (ROOT / "hooks" / "post-receive").read_text():
            install += ["--config", str(settings_file)]
        else:  # the hook cannot pass a settings file yet: the same settings as variables
            push_env |= {f"PROVISIONER_{k.upper()}": _env_value(v) for k, v in settings.items()}
        installed = subprocess.run(
            [*install, str(repo.bare)], capture_output=True, text=True, timeout=30, check=False
        )
        assert installed.returncode == 0, installed.stderr
        with steps.step("git push to live"):
            code, _, said = await run(
                "git", "push", "origin", "main", env=push_env, timeout_s=900, cwd=repo.work
            )
        assert code == 0 and f"remote: deploy of {sha[:8]} to production succeeded" in said, said
        assert await health(proxied) == {"status": "ok", "version": f"v1-{sha[:8]}"}
        live = f"v1-{sha[:8]}"
        # Kept warm: the push moved the app to the droplet's second port, and the release
        # before still answers on the first (under systemd, through the firewall).
        [record] = await ServerRegistry(client, keys).all()
        assert (record.url, record.warm_url) == (f"http://{droplet.ip}:{APP_PORT + 1}", url), record
        assert await health(url) == {"status": "ok", "version": "v1"}
        url, unit = record.url, f"switchyard-app@{APP_PORT + 1}.service"

        # 3. A reboot: the app comes back by itself.
        with steps.step("reboot to serving"):
            first = (droplet.home / "nspawn.pid").read_text()
            droplet.ssh("systemctl reboot", timeout_s=30)  # the session may end with the machine
            await eventually(
                lambda: (droplet.home / "nspawn.pid").read_text() != first, 60, "the reboot", interval_s=0.2
            )
            await eventually(lambda: _version_is(url, live), 90, "the app after the reboot", interval_s=0.5)
        assert ok(droplet, "nft list table inet switchyard_app").count(PROXY_ADDRESS) == 1

        # 4. The app killed: systemd starts it again.
        with steps.step("killed app restarted"):
            pid = int(ok(droplet, f"systemctl show -p MainPID --value {unit}"))
            restarts = int(ok(droplet, f"systemctl show -p NRestarts --value {unit}"))
            assert pid > 0
            ok(droplet, f"kill -9 {pid}")
            await eventually(
                lambda: _restarted(droplet, unit, pid), 30, "systemd to restart the app", interval_s=0.5
            )
            await eventually(lambda: _version_is(url, live), 30, "the restarted app", interval_s=0.5)
        assert int(ok(droplet, f"systemctl show -p NRestarts --value {unit}")) == restarts + 1

        # 5. The playbook again, as the provisioner runs it: nothing changes; --check passes.
        config = load_config(settings_file, env={"REDIS_URL": redis.url, "DIGITALOCEAN_TOKEN": TOKEN})
        ansible = configurer(config, Path(sys.executable).parent, PLAYBOOKS_DIR)
        host_vars = host_vars_from(config)(record)
        commits = CommitSource(DeployStore(client, keys), repo.bare)
        for check in (False, True):
            with steps.step(f"playbook again{' --check' if check else ''}"):
                async with commits.extravars("production") as commit:
                    assert commit["switchyard_app_sha"] == sha
                    again = await ansible.run(
                        PLAYBOOKS["production"], server_id, host_vars, commit, group="production", check=check
                    )
            assert again.changed == 0, f"changed={again.changed} (check={check})"

        # 6. A stranger's address is refused at the app's port; the controller's is not.
        assert controller.routes_via(droplet.ip) == droplet.veth  # before sending anything
        droplet.check_route()
        with socket.create_connection((droplet.ip, APP_PORT + 1), timeout=5):
            pass
        stranger = socket.socket()
        try:
            stranger.settimeout(5)
            stranger.bind((controller.ip, 0))
            with pytest.raises(ConnectionRefusedError):
                stranger.connect((droplet.ip, APP_PORT + 1))
        finally:
            stranger.close()

        # 7. The Redis password is in none of Ansible's artifacts, nor in any argv there.
        files = [p for p in artifacts.rglob("*") if p.is_file()]
        assert any(p.parent.name == "job_events" for p in files), "no artifacts were kept"
        password = redis.password.encode()
        assert [p for p in files if password in p.read_bytes()] == []

        # 8. A staging droplet, and a branch pushed: its own environment there, under its
        # own systemd units and firewall table beside staging's, seen at its preview.
        with steps.step("provisioner up (staging)"):
            code, out, err = await up("staging")
        assert code == 0, f"provisioner up failed ({code}):\n{out}\n{err[-6000:]}"
        staging = booted.droplets[out.strip().split("\t")[0]]
        with steps.step("git push a branch to preview"):
            code, _, said = await run(
                *("git", "push", "origin", "HEAD:refs/heads/feature-x"),
                env=push_env,
                timeout_s=900,
                cwd=repo.work,
            )
        assert code == 0 and f"remote: preview feature-x is {sha[:8]}" in said, said
        branch_unit = f"switchyard-branch-feature-x@{BRANCH_PORT}.service"
        assert ok(staging, f"systemctl is-active {branch_unit} {UNIT}").split() == ["active", "active"]
        assert ok(staging, f"systemctl show -p User --value {branch_unit}") == "switchyard"
        branch_rules = ok(staging, "nft list table inet switchyard_branch_feature_x")
        assert PROXY_ADDRESS in branch_rules and f"{BRANCH_PORT}" in branch_rules
        assert f"{APP_PORT}" in ok(staging, "nft list table inet switchyard_app")  # staging's own, kept
        preview = await running_proxy_get(running_proxy.port, "feature-x.preview.localhost")
        assert preview == {"status": "ok", "version": f"preview-{sha[:8]}"}, preview
        assert await health(f"http://{staging.ip}:{APP_PORT}") == {"status": "ok", "version": "v2"}
        # Deleted: its units, table and root go; staging's stay.
        code, _, said = await run(
            *("git", "push", "origin", ":refs/heads/feature-x"), env=push_env, timeout_s=300, cwd=repo.work
        )
        assert code == 0 and "remote: preview feature-x removed" in said, said
        gone = staging.ssh(
            f"systemctl is-active {branch_unit}; nft list table inet switchyard_branch_feature_x"
        )
        assert gone.stdout.split()[0] == "inactive" and "No such file" in gone.stderr, gone
        assert ok(staging, f"systemctl is-active {UNIT}") == "active"
        assert f"{APP_PORT}" in ok(staging, "nft list table inet switchyard_app")

        print(
            f"\nfirst day on {server_id} ({droplet.ip}):\n"
            f"  create to serving {sum(timings.values()):.1f} s: boot {boot_s:.1f} s (nspawn to sshd"
            f" {droplet.booted_s:.1f} s), configure {timings['configure']:.1f} s, health"
            f" {timings['health']:.1f} s, register {timings['register']:.2f} s\n"
            f"  push to live {steps.seconds['git push to live']:.1f} s, a branch's push to its preview on a"
            f" staging droplet {steps.seconds['git push a branch to preview']:.1f} s"
        )
    finally:
        await client.aclose()
        print("steps:\n" + steps.report())


def _env_value(value: object) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


async def _version_is(url: str, version: str) -> bool:
    found = await health(url)
    return found is not None and found.get("version") == version


async def _reported(hosts: HostStore, name: str) -> bool:
    return any(sample.host == name for sample in await hosts.hosts())


def _restarted(droplet: Droplet, unit: str, old: int) -> bool:
    done = droplet.ssh(f"systemctl show -p MainPID --value {unit}", timeout_s=20)
    return done.returncode == 0 and done.stdout.strip() not in ("", "0", str(old))
