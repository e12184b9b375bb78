"""The app role's server set-up, rendered, and its runs against local servers and an sshd.

The firewall and the units are rendered by the role's own tasks (host.yml, in the mode
that only renders files, into a temporary root); `nft -c` checks the ruleset where
nftables is installed. The release runs are real: ansible-runner against a server
directory on this host, over `ansible_connection=local` or the loopback sshd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from provisioner.configure import PLAYBOOKS_DIR, SYSTEM_PATH
from provisioner.deploy.branches import branch_units
from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.provisioner import BIN_DIR, stop_apps
from tests.support.sshd import SshServer

NFT = shutil.which("nft") or "/usr/sbin/nft"


def run(
    playbook: str, tmp_path: Path, host: dict[str, object], *, cmdline: str = "", **extravars: object
) -> Any:
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    run_dir.mkdir(parents=True)
    return ansible_runner.run(
        private_data_dir=str(run_dir),
        project_dir=str(PLAYBOOKS_DIR),
        playbook=playbook,
        inventory={"all": {"children": {"production": {"hosts": {"h1": host}}}}},
        extravars=extravars,
        cmdline=cmdline or None,
        envvars={
            "PATH": f"{BIN_DIR}{os.pathsep}{SYSTEM_PATH}",
            "ANSIBLE_HOME": str(run_dir / "home"),
            "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
            "ANSIBLE_REMOTE_TEMP": str(run_dir / "remote-tmp"),
            "ANSIBLE_ROLES_PATH": str(PLAYBOOKS_DIR / "roles"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(run_dir / "cp"),
        },
        quiet=True,
        timeout=180,
    )


def output(done: Any) -> str:
    return (Path(done.config.artifact_dir) / "stdout").read_text()


def local_server(path: Path) -> dict[str, object]:
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "switchyard_app_dir": str(path),
        "switchyard_app_port": free_port(),
        "switchyard_app_check_port": free_port(),
        "switchyard_app_base_python": sys.executable,
        "switchyard_app_venv_mode": "link",
        "switchyard_app_health_retries": 40,
    }


def render_host(tmp_path: Path, **extravars: object) -> Any:
    """The role's host.yml alone, rendering under a temporary root."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    book = tmp_path / "host.yml"
    book.write_text(
        "- hosts: production\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: app\n        tasks_from: host.yml\n"
    )
    host: dict[str, object] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    given: dict[str, Any] = {
        "switchyard_root": str(tmp_path / "root"),
        "switchyard_manage_services": False,
        "switchyard_app_dir": "/srv/switchyard/h1",
        "switchyard_app_port": 8000,
        **extravars,
    }
    return run(str(book), tmp_path, host, **given)


@pytest.mark.slow
def test_the_firewall_lets_only_the_proxies_and_the_controller_reach_the_app(tmp_path: Path) -> None:
    done = render_host(
        tmp_path,
        switchyard_app_firewall_allow=["10.0.0.7", "10.0.0.8", "fd00::5/64"],
        switchyard_app_firewall_controller="192.0.2.10",
    )
    assert done.status == "successful", output(done)
    rules_file = tmp_path / "root/etc/switchyard/app-firewall.nft"
    rules = rules_file.read_text()
    assert "elements = { 10.0.0.7, 10.0.0.8, 192.0.2.10 }" in rules
    assert "elements = { fd00::5/64 }" in rules
    assert "tcp dport { 8000, 8001 } jump app_ports" in rules
    assert "ip saddr @allowed_v4 accept" in rules and "ip6 saddr @allowed_v6 accept" in rules
    assert rules.rstrip().endswith("meta l4proto tcp reject with tcp reset\n  }\n}")
    assert "22" not in rules  # SSH is none of this table's business
    if not os.path.exists(NFT):
        pytest.skip("nftables is not installed: the ruleset was rendered, not checked")
    checked = subprocess.run([NFT, "-c", "-f", str(rules_file)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.slow
def test_the_app_runs_as_a_systemd_service_of_its_own_user(tmp_path: Path) -> None:
    done = render_host(tmp_path, switchyard_app_firewall_controller="192.0.2.10")
    assert done.status == "successful", output(done)
    unit = (tmp_path / "root/etc/systemd/system/switchyard-app@.service").read_text()
    for line in (
        "User=switchyard",
        "WorkingDirectory=/srv/switchyard/h1/ports/%i",
        "EnvironmentFile=-/srv/switchyard/h1/shared/.env",
        "ExecStart=/srv/switchyard/h1/bin/run %i",
        "Restart=always",
        "WantedBy=multi-user.target",
    ):
        assert line + "\n" in unit
    firewall = (tmp_path / "root/etc/systemd/system/switchyard-firewall.service").read_text()
    assert "ExecStart=/usr/sbin/nft -f /etc/switchyard/app-firewall.nft\n" in firewall


@pytest.mark.slow
def test_a_branch_environment_gets_units_and_a_firewall_table_of_its_own(tmp_path: Path) -> None:
    done = render_host(
        tmp_path,
        switchyard_app_firewall_controller="192.0.2.10",
        switchyard_app_dir="/srv/switchyard/h1/branches/feature-x",
        switchyard_app_port=9100,
        **branch_units("feature-x"),
    )
    assert done.status == "successful", output(done)
    units = tmp_path / "root/etc/systemd/system"
    # The pool's units and rules are not written over: nothing of theirs is here at all.
    assert sorted(p.name for p in units.iterdir()) == [
        "switchyard-branch-feature-x-firewall.service",
        "switchyard-branch-feature-x@.service",
    ]
    unit = (units / "switchyard-branch-feature-x@.service").read_text()
    assert "WorkingDirectory=/srv/switchyard/h1/branches/feature-x/ports/%i\n" in unit
    assert "After=network-online.target switchyard-branch-feature-x-firewall.service\n" in unit
    firewall = (units / "switchyard-branch-feature-x-firewall.service").read_text()
    assert "ExecStart=/usr/sbin/nft -f /etc/switchyard/branch-feature-x-firewall.nft\n" in firewall
    assert "ExecStop=/usr/sbin/nft delete table inet switchyard_branch_feature_x\n" in firewall
    rules = (tmp_path / "root/etc/switchyard/branch-feature-x-firewall.nft").read_text()
    assert "table inet switchyard_branch_feature_x {" in rules and "tcp dport { 9100, 9101 }" in rules
    assert not (tmp_path / "root/etc/switchyard/app-firewall.nft").exists()


@pytest.mark.slow
def test_a_firewall_with_no_address_or_a_bad_one_is_refused(tmp_path: Path) -> None:
    # Over ansible_connection=local there is no SSH session to take the controller's from.
    done = render_host(tmp_path / "none")
    assert done.status == "failed" and "set switchyard_app_firewall_allow" in output(done)
    done = render_host(tmp_path / "bad", switchyard_app_firewall_allow=["10.0.0.7; accept"])
    assert done.status == "failed" and "bad firewall input" in output(done)
    assert not (tmp_path / "bad/root/etc/switchyard/app-firewall.nft").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)  # several whole Ansible runs; past 60 s on a busy machine
def test_a_new_server_over_ssh_takes_a_deploy_as_its_first_release(sshd: SshServer, tmp_path: Path) -> None:
    """The archive is copied into shared/ before anything else ran on the host."""
    app = tmp_path / "app"
    for name in ("__init__.py", "app/__init__.py", "app/__main__.py", "app/app.py"):
        (app / "examples" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "examples" / name, app / "examples" / name)
    subprocess.run(["git", "init", "-q", str(app)], check=True)
    subprocess.run(["git", "-C", str(app), "add", "-A"], check=True)
    ident = ["-c", "user.name=t", "-c", "user.email=t@switchyard.invalid"]
    subprocess.run(["git", "-C", str(app), *ident, "commit", "-qm", "app"], check=True)
    sha = subprocess.run(
        ["git", "-C", str(app), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    tar = tmp_path / "release.tar"
    subprocess.run(["git", "-C", str(app), "archive", "-o", str(tar), sha.stdout.strip()], check=True)
    server = tmp_path / "droplet"
    host = {
        **local_server(server),
        "ansible_connection": "ssh",
        "ansible_host": "127.0.0.1",
        "ansible_port": sshd.port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(sshd.key),
        "switchyard_manage_services": False,
    }
    try:
        done = run(
            "production.yml",
            tmp_path,
            host,
            switchyard_app_step="prepare",
            switchyard_app_sha=sha.stdout.strip(),
            switchyard_app_archive=str(tar),
            switchyard_app_release="20300101T000000Z-" + sha.stdout[:8],
        )
        assert done.status == "successful", output(done)
        release = server / "releases" / ("20300101T000000Z-" + sha.stdout[:8])
        assert (release / "VERSION").read_text() == f"v1-{sha.stdout[:8]}\n"
        assert not (server / "shared/incoming.tar").exists()
    finally:
        stop_apps(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(300)  # several whole Ansible runs; past 60 s on a busy machine
def test_the_app_reads_its_linked_env_and_a_rerun_or_check_changes_nothing(tmp_path: Path) -> None:
    server = tmp_path / "server"
    host = local_server(server)
    (server / "shared/log").mkdir(parents=True)
    # A log past the cap is rotated when the app starts, not left to grow.
    (server / "shared/log/app.log").write_bytes(b"x" * 2048)
    env = {"GREETING": 'say "hi" for $5'}
    try:
        done = run(
            "production.yml", tmp_path, host, switchyard_app_env=env, switchyard_app_log_max_bytes=1024
        )
        assert done.status == "successful", output(done)
        release = (server / "current").resolve()
        assert os.readlink(release / ".env") == str(server / "shared/.env")
        assert (server / "shared/.env").stat().st_mode & 0o777 == 0o640
        pid_file = server / f"shared/app-{host['switchyard_app_port']}.pid"
        pid = int(pid_file.read_text())
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b'GREETING=say "hi" for $5' in environ
        assert (server / "shared/log/app.log.1").stat().st_size == 2048
        assert 'say \\"hi\\"' not in output(done)  # the env file's task keeps its values out

        again = run("production.yml", tmp_path, host, switchyard_app_env=env)
        assert again.status == "successful", output(again)
        assert again.stats["changed"].get("h1", 0) == 0, output(again)
        checked = run("production.yml", tmp_path, host, cmdline="--check", switchyard_app_env=env)
        assert checked.status == "successful", output(checked)
        assert [p.name for p in (server / "releases").iterdir()] == [release.name]
        assert int(pid_file.read_text()) == pid

        fresh = run("production.yml", tmp_path, local_server(tmp_path / "fresh"), cmdline="--check")
        assert fresh.status == "successful", output(fresh)
        assert not (tmp_path / "fresh").exists()
    finally:
        stop_apps(tmp_path)
