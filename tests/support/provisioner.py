"""The provisioner under test: its parts built from a real config, and the apps its
playbooks start, ended by the pid file each wrote."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from provisioner.app import Parts, build
from provisioner.config import ProvisionerConfig, load_config
from provisioner.scale.local import app_pid
from tests.support import ROOT
from tests.support.wait import wait_until

BIN_DIR = Path(sys.executable).parent
TOKEN = "dop_v1_" + "stand-in-token-0123456789"  # assembled: no scanner should take it for a real one
FINGERPRINT = "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"


def stop_apps(root: Path) -> None:
    """End every app a playbook started under `root`, by the pid file it wrote."""
    for marker in root.glob("**/shared/app-*.pid"):
        server_dir, port = marker.parent.parent, int(marker.stem.removeprefix("app-"))
        pid = app_pid(server_dir, port)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_until(_gone(server_dir, port, pid), 10, f"app {pid} to stop")


def _gone(server_dir: Path, port: int, pid: int) -> Callable[[], bool]:
    return lambda: app_pid(server_dir, port) != pid


PartsFactory = Callable[..., Awaitable[Parts]]


class PartsMaker:
    """Builds the provisioner's parts from a config: defaults suited to tests, then `settings`."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        self.made: list[Parts] = []

    async def __call__(self, extravars: dict[str, object] | None = None, **settings: Any) -> Parts:
        env = {"DIGITALOCEAN_TOKEN": settings.pop("token")} if "token" in settings else {}
        values: dict[str, Any] = {
            "redis_url": self.redis_url,
            "local_dir": str(self.tmp_path / "servers"),
            "local_python": sys.executable,
            "worker_id": "test-worker",
            "health_timeout_s": 10.0,
            "poll_interval_s": 0.05,
            "digitalocean_api_backoff_s": 0.01,
            "digitalocean_api_retries": 2,
            "digitalocean_api_timeout_s": 5.0,
            "cooldown_s": 0,
            "scale_in_cooldown_s": 0,
        }
        values.update(settings)
        config: ProvisionerConfig = load_config(env=env, base=values)
        parts = build(config, bin_dir=BIN_DIR, actor="provisioner:test", extravars=extravars)
        self.made.append(parts)
        return parts

    async def close(self) -> None:
        for parts in self.made:
            await parts.close()
        stop_apps(self.tmp_path)


async def provisioner_cli(*args: str, env: dict[str, str], timeout_s: float = 120.0) -> tuple[int, str, str]:
    """`python -m provisioner ARGS` while this loop keeps serving (a stand-in API, a webhook
    receiver): (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "provisioner",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
