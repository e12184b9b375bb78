"""`make run`'s push-to-deploy set-up: the bare repository with hooks/post-receive, made
by the commands devrun runs, and the steps it prints."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from devrun.commands import RedisArgs, deploy_repo_commands, hints
from tests.support import ROOT

URL = "redis://127.0.0.1:7000/0"


def run_all(argvs: list[list[str]]) -> None:
    for argv in argvs:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr


def config(repo: Path, key: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "config", "--get", key], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def test_the_deploy_repository_gets_the_hook_and_the_redis_it_deploys_with(tmp_path: Path) -> None:
    repo = tmp_path / "deploy.git"
    run_all(deploy_repo_commands(str(ROOT), str(repo), RedisArgs(URL, URL, "shop:"), with_url=True))
    assert os.readlink(repo / "hooks" / "post-receive") == str(ROOT / "hooks" / "post-receive")
    assert config(repo, "switchyard.redisUrl") == URL and config(repo, "switchyard.keyPrefix") == "shop:"
    # Run again on a store from $REDIS_URL: the URL (it may hold a password) is not kept.
    run_all(deploy_repo_commands(str(ROOT), str(repo), RedisArgs(URL, '"$REDIS_URL"'), with_url=False))
    assert config(repo, "switchyard.redisUrl") == "" and config(repo, "switchyard.keyPrefix") == ""


def test_install_refuses_to_write_a_password_into_git_config(tmp_path: Path) -> None:
    repo = tmp_path / "deploy.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True, timeout=30)
    word = secrets.token_hex(8)
    secret_url = f"redis://:{word}@10.0.0.5:6379/0"
    done = subprocess.run(
        [str(ROOT / "hooks" / "install"), "--redis-url", secret_url, str(repo)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "has a password" in done.stderr and word not in done.stderr
    assert word not in (repo / "config").read_text() and not (repo / "hooks" / "post-receive").exists()
    missing = subprocess.run(
        [str(ROOT / "hooks" / "install"), str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "is not a git repository" in missing.stderr
    usage = subprocess.run([str(ROOT / "hooks" / "install")], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: hooks/install")


def test_the_local_run_says_how_to_push_deploy_look_and_roll_back() -> None:
    common = {
        "python": ".venv/bin/python",
        "root": "/src",
        "redis": RedisArgs(URL, URL),
        "backends": [("production", "v1", "http://127.0.0.1:9001")],
        "proxy": ("127.0.0.1:8080", "127.0.0.1:8081"),
        "export": True,
    }
    text = hints(**common, deploy_repo="/tmp/switchyard-deploy.git")  # type: ignore[arg-type]
    for line in (
        f".venv/bin/python -m provisioner up --pool production --provider local --redis-url {URL}",
        "git remote add local /tmp/switchyard-deploy.git",
        "git push local HEAD:main",
        "curl -s 127.0.0.1:8080/version",
        f".venv/bin/python -m provisioner releases --env production --redis-url {URL}",
        f".venv/bin/python -m provisioner rollback --env production --redis-url {URL}",
        f".venv/bin/python -m provisioner up --pool staging --provider local --redis-url {URL}",
        "git push local HEAD:refs/heads/my-feature",
        "curl -s -H 'Host: my-feature.preview.localhost' 127.0.0.1:8080/version",
        f".venv/bin/python -m provisioner previews list --redis-url {URL}",
        "git push local :refs/heads/my-feature",
    ):
        assert line in text
    assert "git push" not in hints(**common)  # type: ignore[arg-type]
