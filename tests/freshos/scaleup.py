"""A scale-up world on fresh-OS droplets, shared by tests/freshos/test_image.py and
bench/scaleup.py: the controller's private address, a Redis with a password bound to
it, the stand-in DigitalOcean API booting nspawn droplets, a settings file, and the
provisioner's CLI run as a subprocess with the secrets in its environment only.

Only loopback and the addresses of the namespaces and links made here are contacted.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from state import KeySpace, ServerRecord, ServerRegistry, connect
from tests.freshos.conftest import TOKEN, Booted
from tests.freshos.hostaddr import HostAddress, claim
from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support.procs import run
from tests.support.redis_server import RedisServer

FINGERPRINT = "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"
PROXY_ADDRESS = "192.0.2.10"  # TEST-NET-1: listed in the firewall, never contacted
APP_PORT = 8000


@dataclass(frozen=True)
class TaskRun:
    name: str
    file: str  # the tasks file under playbooks/, e.g. roles/app/tasks/prepare.yml
    outcome: str  # ok, changed, skipped, failed
    duration_s: float


@dataclass
class World:
    fake: FakeDigitalOcean
    booted: Booted
    redis: RedisServer
    controller: HostAddress
    settings_file: Path
    artifacts: Path

    def env(self) -> dict[str, str]:
        """The CLI's environment: this one's, less any provisioner settings, plus the secrets."""
        kept = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PROVISIONER_", "GIT_", "DIGITALOCEAN_")) and k != "REDIS_URL"
        }
        return kept | {
            "REDIS_URL": self.redis.url,
            "DIGITALOCEAN_TOKEN": TOKEN,
            "DIGITALOCEAN_END_POINT": self.fake.url,
        }

    async def provisioner(self, *argv: str, timeout_s: float = 1200.0) -> tuple[int, str, str]:
        command = (sys.executable, "-m", "provisioner", *argv, "--config", str(self.settings_file))
        return await run(*command, env=self.env(), timeout_s=timeout_s)

    async def record(self, server_id: str) -> ServerRecord:
        client = connect(self.redis.url)
        try:
            found = [r for r in await ServerRegistry(client, KeySpace()).all() if r.id == server_id]
        finally:
            await client.aclose()
        assert found, f"no record of {server_id}"
        return found[0]

    def last_run(self) -> list[TaskRun]:
        """The tasks of the newest Ansible run, in order, from its artifacts' job events."""
        runs = sorted(
            (p for p in self.artifacts.rglob("job_events") if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
        found = []
        for event_file in sorted(runs[-1].glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0])):
            event = json.loads(event_file.read_text())
            kind, data = event.get("event", ""), event.get("event_data", {})
            if kind not in ("runner_on_ok", "runner_on_skipped", "runner_on_failed"):
                continue
            outcome = kind.removeprefix("runner_on_")
            if outcome == "ok" and data.get("res", {}).get("changed"):
                outcome = "changed"
            where = str(data.get("task_path", "")).rsplit("/playbooks/", 1)[-1].split(":")[0]
            found.append(
                TaskRun(str(data.get("task", "")), where, outcome, float(data.get("duration") or 0.0))
            )
        return found

    def last_run_tasks(self) -> dict[str, str]:
        """Task name -> its outcome (ok, changed, skipped, failed) in the newest Ansible run."""
        return outcomes(self.last_run())


def outcomes(tasks: list[TaskRun]) -> dict[str, str]:
    """Task name -> its outcome; a task run in one loop item and skipped in another ran."""
    found: dict[str, str] = {}
    for task in tasks:
        if task.outcome in ("ok", "changed") or task.name not in found:
            found[task.name] = task.outcome
    return found


@asynccontextmanager
async def world(
    tmp: Path, booted: Booted, fake: FakeDigitalOcean, **settings: object
) -> AsyncIterator[World]:
    """Everything but the droplets' booter and the stand-in (given: the fixtures' or the bench's)."""
    controller = claim()
    redis = RedisServer(bind=("127.0.0.1", controller.ip), password=secrets.token_hex(16))
    try:
        redis.start()
        artifacts = tmp / "artifacts"
        values: Mapping[str, object] = {
            "provider": "digitalocean",
            "digitalocean_ssh_keys": [FINGERPRINT],
            "digitalocean_image": "debian-12-x64",
            "ssh_private_key_file": str(booted.key[1]),
            "remote_app_port": APP_PORT,
            "remote_redis_host": controller.ip,
            "proxy_addresses": [PROXY_ADDRESS],
            "ansible_artifacts_dir": str(artifacts),
            "poll_interval_s": 0.2,
            "health_timeout_s": 60.0,
            "configure_timeout_s": 900.0,
            **settings,
        }
        settings_file = tmp / "provisioner.toml"
        # JSON's strings, numbers and lists of strings are TOML's too.
        settings_file.write_text(
            "[provisioner]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        )
        yield World(fake, booted, redis, controller, settings_file, artifacts)
    finally:
        redis.cleanup()
        controller.release()
