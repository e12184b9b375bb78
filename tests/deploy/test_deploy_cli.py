"""The deploy commands as a person types them: usage errors in one line, the dynamic
inventory (and the script Ansible runs), the receive command's refusals, the pre-commit
hook refusing a commit."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from state import KeySpace, ServerRecord, ServerRegistry, StateStore, connect
from state.model import PoolName
from tests.support import ROOT
from tests.support.deploy import GIT_ID, AppRepo, deploy_env, git, provisioner_cli
from tests.support.provisioner import BIN_DIR

SHA = "a" * 40


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["deploy", "--env", "canary", "--sha", SHA], 2, "invalid choice: 'canary'"),
        (
            ["deploy", "--env", "production"],
            2,
            "one of the arguments --sha --switch/--promote --discard --resume is required",
        ),
        (["deploy", "--env", "production", "--sha", SHA, "--switch", "1a2b3c4d"], 2, "not allowed with"),
        (["deploy", "--env", "production", "--switch", "1a2b3c4d", "--hold"], 2, "--hold goes with --sha"),
        (["deploy", "--env", "production", "--switch", "zz"], 2, "sha 'zz' is not a commit id"),
        (["deploy", "--env", "production", "--sha", "abc123"], 2, "sha 'abc123' is not a full commit id"),
        (["deploy", "--env", "production", "--sha", SHA], 2, "no repository to deploy from: pass --repo"),
        (["rollback"], 2, "the following arguments are required: --env"),
        (["inventory"], 2, "one of the arguments --list --host is required"),
        (["webhook"], 2, "the webhook needs a secret: set PROVISIONER_PUSH_WEBHOOK_SECRET"),
        (["webhook", "--listen", "nowhere"], 2, "webhook_listen 'nowhere' is not host:port"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], code: int, message: str, redis_url: str, tmp_path: Path
) -> None:
    done = provisioner_cli(*args, env=deploy_env(redis_url, tmp_path), timeout_s=30)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    # One line: ours, or argparse's after its usage lines.
    assert message in lines[-1] and all(line.startswith(("usage:", " ")) for line in lines[:-1])


def test_bad_settings_name_the_key(redis_url: str, tmp_path: Path) -> None:
    env = deploy_env(redis_url, tmp_path, PROVISIONER_WEBHOOK_NETWORKS="10.0.0.0/8,not-a-net")
    done = provisioner_cli("inventory", "--list", env=env, timeout_s=30)
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: webhook_networks entry 'not-a-net' is not a network: use CIDR such as 192.30.252.0/22"
    )
    toml = tmp_path / "p.toml"
    toml.write_text('push_webhook_secret = "in a file"\n')
    done = provisioner_cli("inventory", "--list", "--config", str(toml), env=deploy_env(redis_url, tmp_path))
    assert done.returncode == 2 and "push_webhook_secret may not be set in" in done.stderr
    done = provisioner_cli(
        "inventory", "--list", env=deploy_env(redis_url, tmp_path, PROVISIONER_DEPLOY_KEEP_RELEASES="0")
    )
    assert (
        done.returncode == 2 and "deploy_keep_releases (from PROVISIONER_DEPLOY_KEEP_RELEASES)" in done.stderr
    )


async def test_deploy_failures_that_need_no_server_say_what_to_do(
    app_repo: AppRepo, redis_url: str, tmp_path: Path
) -> None:
    env = deploy_env(redis_url, tmp_path)
    done = provisioner_cli(
        "deploy", "--env", "production", "--sha", SHA, "--repo", str(app_repo.bare), env=env
    )
    assert (
        done.returncode == 1 and f"commit {SHA} is not in {app_repo.bare}: push it there first" in done.stderr
    )
    sha = app_repo.commit("x")
    assert app_repo.push("main").returncode == 0
    client = connect(redis_url)
    try:
        # A backend added by hand is not deployed to; with nothing else there is nothing to do.
        await StateStore(client, KeySpace()).add_backend("production", "http://127.0.0.1:9")
    finally:
        await client.aclose()
    done = provisioner_cli(
        "deploy", "--env", "production", "--sha", sha, "--repo", str(app_repo.bare), env=env
    )
    assert done.returncode == 1
    assert "skipping http://127.0.0.1:9: added to production by hand" in done.stdout
    assert "no server of the production pool is managed by the provisioner" in done.stderr
    assert "python -m provisioner up --pool production" in done.stderr

    # receive: a garbage line is refused; a feature branch is a preview, and with no
    # staging server to run it on, refused with what to do.
    lines = f"garbage\n{SHA} {sha} refs/heads/feature\n"
    done = subprocess.run(
        [str(BIN_DIR / "python"), "-m", "provisioner", "receive", "--repo", str(app_repo.bare)],
        cwd=ROOT,
        env=env,
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "error: 'garbage' is not '<old sha> <new sha> <ref>'" in done.stderr
    assert "refs/heads/feature -> preview feature" in done.stdout and "deploying" not in done.stdout
    assert "error: preview feature of feature: branch environments go to the staging servers" in done.stderr
    assert "python -m provisioner up --pool staging" in done.stderr


async def test_the_inventory_lists_the_pools_servers_for_ansible(redis_url: str, tmp_path: Path) -> None:
    client = connect(redis_url)
    now = time.time()
    try:
        keys = KeySpace()
        made: tuple[tuple[str, PoolName, int], ...] = (
            ("sy-prod-aaaa", "production", 9101),
            ("sy-stag-bbbb", "staging", 9102),
        )
        for sid, pool, port in made:
            url = f"http://127.0.0.1:{port}"
            record = ServerRecord(
                sid, pool, "local", "active", now, now, "t", ref=str(tmp_path / sid), url=url
            )
            await ServerRegistry(client, keys).put(record)
            await StateStore(client, keys).add_backend(pool, url)
    finally:
        await client.aclose()
    env = deploy_env(redis_url, tmp_path, ANSIBLE_HOME=str(tmp_path / "ansible"))
    done = subprocess.run(
        [str(BIN_DIR / "ansible-inventory"), "-i", str(ROOT / "playbooks/inventory/switchyard.py"), "--list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["production"]["hosts"] == ["sy-prod-aaaa"] and data["staging"]["hosts"] == ["sy-stag-bbbb"]
    prod = data["_meta"]["hostvars"]["sy-prod-aaaa"]
    assert prod["ansible_connection"] == "local"
    assert prod["switchyard_app_dir"] == str(tmp_path / "sy-prod-aaaa")
    assert prod["switchyard_app_port"] == 9101 and prod["switchyard_in_pool"] is True
    assert prod["switchyard_app_pool"] == "production"  # from the group
    one = provisioner_cli("inventory", "--host", "sy-stag-bbbb", env=env)
    assert one.returncode == 0 and json.loads(one.stdout)["switchyard_backend_url"] == "http://127.0.0.1:9102"
    missing = provisioner_cli("inventory", "--host", "sy-nope", env=env)
    assert missing.returncode == 1 and "no server named sy-nope" in missing.stderr


def test_pre_commit_refuses_lint_and_failing_tests(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    git(tmp_path, "init", "-q", "--initial-branch=main", str(work))
    installed = subprocess.run(
        [str(ROOT / "hooks" / "install"), str(work)], capture_output=True, text=True, timeout=30, check=False
    )
    assert installed.returncode == 0 and "installed pre-commit" in installed.stdout, installed.stderr
    git(work, "config", "switchyard.fastTests", "test_fast.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["SWITCHYARD_BIN"] = str(BIN_DIR)  # the ruff and pytest of this test run

    def commit(files: dict[str, str]) -> subprocess.CompletedProcess[str]:
        for name, text in files.items():
            (work / name).write_text(text)
        git(work, "add", "-A")
        return subprocess.run(
            ["git", *GIT_ID, "commit", "-q", "-m", "change"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    passing = "def test_ok() -> None:\n    assert 1 + 1 == 2\n"
    lint = commit({"test_fast.py": passing, "bad.py": "import os\n"})  # F401: unused import
    assert lint.returncode != 0 and "pre-commit: ruff check found problems" in lint.stderr
    assert "the commit was refused" in lint.stderr
    style = commit({"bad.py": "x  =  1\n"})
    assert style.returncode != 0 and "ruff format found files to reformat" in style.stderr
    failing = commit({"bad.py": "x = 1\n", "test_fast.py": "def test_ok() -> None:\n    assert 1 + 1 == 3\n"})
    assert failing.returncode != 0 and "the fast tests failed (test_fast.py)" in failing.stderr
    assert (
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, check=False).returncode
        != 0
    )
    good = commit({"test_fast.py": passing})
    assert good.returncode == 0, good.stderr
    assert git(work, "log", "--oneline").stdout.count("change") == 1
