"""Deploys under test: a real bare repository holding the sample app, pushed to with
real `git push`; the provisioner's commands run as a person or a hook runs them."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from provisioner.app import Parts
from provisioner.scale.local import app_pid
from state import ServerRecord
from tests.support import ROOT
from tests.support.wait import wait_until

APP_FILES = ("__init__.py", "app/__init__.py", "app/__main__.py", "app/app.py")
HEALTHY = 'return web.json_response({"status": "ok", "version": request.app[CONFIG].version})'
SICK = 'return web.json_response({"status": "sick"}, status=503)'
GIT_ID = ("-c", "user.name=Switchyard Test", "-c", "user.email=test@switchyard.invalid")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["git", *GIT_ID, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 or args[0] == "push", f"git {' '.join(args)}: {done.stderr}"
    return done


class AppRepo:
    """The sample app's repository: a work tree and the bare repository it pushes to."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "app.git"
        self.work = root / "app"
        git(root, "init", "-q", "--bare", "--initial-branch=main", str(self.bare))
        git(root, "init", "-q", "--initial-branch=main", str(self.work))
        for name in APP_FILES:
            target = self.work / "examples" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "examples" / name, target)
        git(self.work, "remote", "add", "origin", str(self.bare))
        self.commit("the sample app")

    def commit(self, message: str, *, health: str = HEALTHY) -> str:
        """A new commit; `health` is the line the app's /health handler returns."""
        app = self.work / "examples" / "app" / "app.py"
        text = (ROOT / "examples" / "app" / "app.py").read_text()
        assert HEALTHY in text, "the sample app's health handler changed: update HEALTHY"
        app.write_text(text.replace(HEALTHY, health))
        with (self.work / "CHANGES").open("a") as changes:
            changes.write(message + "\n")
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        return git(self.work, "rev-parse", "HEAD").stdout.strip()

    def push(self, refspec: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return git(self.work, "push", "origin", refspec, env=env)


def deploy_env(redis_url: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment the provisioner's commands get: this test's Redis and servers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PROVISIONER_", "GIT_")) and k not in ("REDIS_URL", "DIGITALOCEAN_TOKEN")
    }
    env.update(
        REDIS_URL=redis_url,
        PROVISIONER_LOCAL_DIR=str(tmp_path / "servers"),
        PROVISIONER_HEALTH_TIMEOUT_S="5",
        PROVISIONER_WORKER_ID="test",
    )
    env.update(settings)
    return env


def provisioner_cli(
    *args: str, env: dict[str, str], timeout_s: float = 200
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


async def servers(parts: Parts, *pools: str) -> list[ServerRecord]:
    """Local servers made by the provisioner's real steps, side by side."""
    return list(await asyncio.gather(*(parts.provisioner.provision(p, "test") for p in pools)))  # type: ignore[arg-type]


async def live_url(parts: Parts, record: ServerRecord) -> str:
    """Where the server answers now: a warm deploy or rollback moves it between ports."""
    now = await parts.registry.get(record.id)
    assert now is not None, f"server {record.id} is gone"
    return now.url


def current(record: ServerRecord) -> Path:
    """The release a server's `current` link points at."""
    return (Path(record.ref) / "current").resolve()


def serving_pid(record: ServerRecord) -> int | None:
    """The pid of the app that runs the release `current` names (on whichever port)."""
    root = Path(record.ref)
    live = (root / "current").resolve()
    for link in (root / "ports").iterdir():
        if link.resolve() == live:
            return app_pid(root, int(link.name))
    return None


def releases(record: ServerRecord) -> list[str]:
    return sorted(p.name for p in (Path(record.ref) / "releases").iterdir())


def hook_env(redis_url: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    """What `git push` runs with. The Redis URL is not in it: the hook reads it from the
    repository's git config, where hooks/install wrote it. The hook's Python is a wrapper
    that notes any GIT_* variable reaching it, then runs the real one."""
    wrapper = tmp_path / "python"
    wrapper.write_text(
        f"#!/bin/sh\n{{ echo run; env | grep '^GIT_' || true; }} >> {tmp_path / 'hook-env.log'}\n"
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = deploy_env(
        redis_url, tmp_path, PROVISIONER_DEPLOY_KEEP_RELEASES="2", SWITCHYARD_PYTHON=str(wrapper), **settings
    )
    del env["REDIS_URL"]
    return env


def install_hooks(repo: AppRepo, redis_url: str) -> None:
    """hooks/install into the bare repository, pointed at this test's Redis."""
    done = subprocess.run(
        [str(ROOT / "hooks" / "install"), "--redis-url", redis_url, str(repo.bare)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def start_webhook(env: dict[str, str], port: int, log_path: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """`python -m provisioner webhook` on 127.0.0.1:`port`, its output in `log_path`;
    returned once its log says it listens."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "provisioner", "webhook", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            **popen,
        )

    def up() -> bool:
        assert proc.poll() is None, log_path.read_text()
        return "push webhook listening" in log_path.read_text()

    try:
        wait_until(up, 20, "the webhook to listen")
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc


def stop_webhook(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    """SIGTERM, as systemd stops it; its exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout_s)
