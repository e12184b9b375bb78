"""What a managed server is told: its Redis and firewall in the host variables, the
Redis password only through a 0600 file of the run's own (in no artifact)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from provisioner.app import droplet_settings, redis_password
from provisioner.config import load_config
from provisioner.configure import Configurer
from provisioner.errors import ConfigError
from provisioner.scale.droplets import droplet_host_vars
from provisioner.scale.provider import Machine
from tests.support import ROOT
from tests.support.provisioner import BIN_DIR

PASSWORD = "s3cret/with+odd=chars-" + "0123456789"  # assembled: a test value
PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: the password file as the play sees it
      ansible.builtin.stat:
        path: "{{ switchyard_redis_password_file }}"
      register: found
    - name: report its mode and whether it holds the password (never the password)
      ansible.builtin.set_fact:
        switchyard_app_report:
          mode: "{{ found.stat.mode }}"
          matches: >-
            {{ lookup('ansible.builtin.file', switchyard_redis_password_file) | hash('sha256')
               == expected }}
"""


def test_the_droplets_host_vars_carry_the_redis_and_the_proxies() -> None:
    config = load_config(
        base={
            "redis_url": "redis://:pw@10.0.0.5:6380/0",
            "proxy_addresses": ("10.0.0.2", "10.0.1.0/24"),
        }
    )
    found = droplet_host_vars(droplet_settings(config), Machine("sy-prod-1", "1", "10.0.0.9", 8000))
    assert (found["switchyard_redis_host"], found["switchyard_redis_port"]) == ("10.0.0.5", 6380)
    assert found["switchyard_app_firewall_allow"] == ["10.0.0.2", "10.0.1.0/24"]
    assert not any(str(v) == "pw" for v in found.values())
    assert found["switchyard_key_prefix"] == "switchyard:"
    shared = droplet_settings(load_config(base={"key_prefix": "shop-b:"}))
    assert droplet_host_vars(shared, Machine("a", "1", "x", 1))["switchyard_key_prefix"] == "shop-b:"

    told = load_config(base={"redis_url": "redis://127.0.0.1/0", "remote_redis_host": "10.0.0.7"})
    assert droplet_host_vars(droplet_settings(told), Machine("a", "1", "x", 1))["switchyard_redis_host"] == (
        "10.0.0.7"
    )
    unmanaged = load_config(base={"remote_install_deps": False})
    assert "switchyard_app_firewall_allow" not in droplet_host_vars(
        droplet_settings(unmanaged), Machine("a", "1", "x", 1)
    )


def test_a_bad_proxy_address_is_refused() -> None:
    with pytest.raises(ConfigError, match="proxy_addresses entry 'proxy-1'"):
        load_config(base={"proxy_addresses": ("proxy-1",)})


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("redis://:s3cret%2Fx@h:6379/0", "s3cret/x"),
        ("redis://user:pw@h/0", "pw"),
        ("redis://h/0?password=q%2By", "q+y"),
        ("redis://h/0", ""),
    ],
)
def test_the_password_is_read_from_the_user_info_or_the_query(url: str, password: str) -> None:
    assert redis_password(url) == password


async def test_the_password_reaches_the_play_as_a_0600_file_and_no_artifact(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAY)
    artifacts = tmp_path / "artifacts"
    configurer = Configurer(
        tmp_path,
        BIN_DIR,
        timeout_s=120,
        secret_files={"switchyard_redis_password_file": PASSWORD},
        artifacts_dir=artifacts,
    )
    result = await configurer.run(
        "play.yml",
        "h",
        {"ansible_connection": "local", "ansible_python_interpreter": str(BIN_DIR / "python")},
        {"expected": hashlib.sha256(PASSWORD.encode()).hexdigest()},
    )
    assert result.report == {"mode": "0600", "matches": True}
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert any(p.parent.name == "job_events" for p in files), "no artifacts were kept"
    assert [p for p in files if PASSWORD.encode() in p.read_bytes()] == []


def test_the_monitors_requirements_are_pinned_as_the_programs() -> None:
    pins = {
        line.split("#")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    }
    monitor = [
        line.split("#")[0].strip()
        for line in (ROOT / "requirements-monitor.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert monitor and set(monitor) <= pins, set(monitor) - pins
