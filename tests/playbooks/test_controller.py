"""controller.yml, rendered: the provisioner's worker and the push webhook as systemd
services, their secrets in a 0600 file and nowhere in Ansible's output or artifacts."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.support.playbooks import files_containing, output, run


@pytest.mark.slow
def test_the_controller_playbook_installs_the_worker_and_the_webhook(tmp_path: Path) -> None:
    password_file = tmp_path / "secret" / "redis-password"
    password_file.parent.mkdir()
    password_file.write_text("pw-" + secrets.token_hex(16))
    password_file.chmod(0o600)
    token = "dop_v1_" + secrets.token_hex(16)
    done = run(
        "controller.yml",
        "controller",
        tmp_path,
        switchyard_redis_password_file=str(password_file),
        switchyard_controller_env={"DIGITALOCEAN_TOKEN": token, "PROVISIONER_PROVIDER": "digitalocean"},
    )
    assert done.status == "successful", output(done)
    units = tmp_path / "root/etc/systemd/system"
    worker = (units / "switchyard-worker.service").read_text()
    webhook = (units / "switchyard-webhook.service").read_text()
    assert "ExecStart=/opt/switchyard/.venv/bin/python -m provisioner worker\n" in worker
    assert (
        "ExecStart=/opt/switchyard/.venv/bin/python -m provisioner webhook --listen 127.0.0.1:8090\n"
        in webhook
    )
    for unit in (worker, webhook):
        for line in (
            "User=switchyard",
            "EnvironmentFile=/etc/switchyard/switchyard.env",
            "EnvironmentFile=/etc/switchyard/controller.env",
            "Restart=on-failure",
            "WantedBy=multi-user.target",
        ):
            assert line + "\n" in unit
    env_file = tmp_path / "root/etc/switchyard/controller.env"
    assert f"DIGITALOCEAN_TOKEN={token}\n" in env_file.read_text()
    assert env_file.stat().st_mode & 0o777 == 0o600
    # The token went in as an extravar (env/extravars, the run's input; a vault in real
    # use): the run's output and events do not hold it.
    assert [p for p in files_containing(tmp_path, token) if p.name != "extravars"] == [env_file]
    assert token not in output(done)
