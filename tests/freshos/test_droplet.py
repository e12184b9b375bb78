"""A fresh OS as the droplet: booted by systemd-nspawn, logged in to with the real ssh
client, packages only through the host side's proxy, rebooted with its disk kept."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.freshos.conftest import Booted, DropletFactory
from tests.freshos.droplet import Droplet, DropletError, boot, stop
from tests.freshos.reaper import container_inits, is_ours, wait_gone
from tests.support.wait import wait_until

pytestmark = pytest.mark.freshos


def ok(droplet: Droplet, command: str, timeout_s: float = 120.0) -> str:
    done = droplet.ssh(command, timeout_s=timeout_s)
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {entry["name"] for entry in json.loads(out or "[]")}


def test_it_boots_systemd_to_multi_user_and_root_logs_in_with_the_key(
    droplet_factory: DropletFactory,
) -> None:
    droplet = droplet_factory("fresh-boot")

    assert ok(droplet, "cat /proc/1/comm") == "systemd"
    assert ok(droplet, "systemctl is-active multi-user.target") == "active"
    assert ok(droplet, "systemctl is-system-running --wait") == "running"
    assert ok(droplet, "hostname") == "fresh-boot"
    assert ok(droplet, "runuser -u nobody -- python3 -c 'print(1)'") == "1"  # not only root can use it
    assert ok(droplet, "ip -4 -o addr show dev eth0").split()[3] == f"{droplet.ip}/30"
    # Fresh: what the playbooks install is not there yet.
    assert droplet.ssh("python3 -c 'import ensurepip'").returncode != 0  # python3-venv
    assert droplet.ssh("command -v nft").returncode != 0
    assert droplet.booted_s < 30, f"booted in {droplet.booted_s:.1f} s"
    # Another key is refused.
    stranger = Path(droplet.home / "stranger")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    refused = subprocess.run(
        [*dataclasses.replace(droplet, key=str(stranger)).ssh_command("true")],
        capture_output=True,
        timeout=30,
    )
    assert refused.returncode == 255


def test_it_refuses_an_address_that_does_not_route_through_its_veth(droplet_factory: DropletFactory) -> None:
    droplet = droplet_factory("fresh-route")
    elsewhere = dataclasses.replace(droplet, ip="127.0.0.1")
    with pytest.raises(DropletError, match="not this droplet's veth"):
        elsewhere.ssh("true")


@pytest.mark.timeout(300)
def test_apt_and_pip_reach_their_archives_only_through_the_proxy(droplet_factory: DropletFactory) -> None:
    droplet = droplet_factory("fresh-apt")

    ok(droplet, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv", 240)
    # Past the shared wheels (tests/freshos/caches.py) to the index itself.
    ok(
        droplet,
        "python3 -m venv /opt/v && PIP_CONFIG_FILE=/dev/null /opt/v/bin/pip install -q six==1.16.0",
        120,
    )
    assert ok(droplet, "/opt/v/bin/python -c 'import six; print(six.__version__)'") == "1.16.0"
    # Without the proxy there is no way out.
    direct = droplet.ssh(
        "env -u http_proxy -u HTTP_PROXY curl -sS --max-time 5 -o /dev/null http://deb.debian.org/"
    )
    assert direct.returncode != 0


def test_a_reboot_brings_sshd_back_with_the_disk_kept(droplet_factory: DropletFactory) -> None:
    droplet = droplet_factory("fresh-reboot")
    ok(droplet, "touch /run/volatile /root/kept")
    first = (droplet.home / "nspawn.pid").read_text()

    droplet.ssh("systemctl reboot")  # the session may end with the machine
    wait_until(
        lambda: droplet.ssh("test ! -e /run/volatile && test -e /root/kept", timeout_s=10).returncode == 0,
        60,
        "the droplet to come back from its reboot",
    )
    assert (droplet.home / "nspawn.pid").read_text() != first  # a new container, same disk

    ok(droplet, "rm /root/kept && touch /run/volatile /root/kept-too")
    stop(droplet)  # powered off by the harness this time
    assert not droplet.banner()
    boot(droplet)
    assert [
        droplet.ssh(f"test -e {path}").returncode
        for path in ("/root/kept-too", "/root/kept", "/run/volatile")
    ] == [0, 1, 1]


def test_destroy_leaves_no_process_mount_or_namespace(booted: Booted) -> None:
    droplet = booted.up("fresh-gone")
    nspawn = int((droplet.home / "nspawn.pid").read_text())
    pids = (droplet.supervisor_pid, droplet.proxy_pid, nspawn)
    assert droplet.netns in netns_names()

    booted.destroy("fresh-gone")

    assert droplet.netns not in netns_names()
    assert not Path(f"/sys/class/net/{droplet.veth}").exists()
    assert not droplet.home.exists()
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
    with pytest.raises(DropletError):
        droplet.check_route()


def test_destroy_ends_the_container_whose_nspawn_was_killed(booted: Booted) -> None:
    """A stop that timed out SIGKILLs the supervisor and nspawn, which leaves the container's
    init running under the host's init: destroy finds it by its network namespace and ends it."""
    droplet = booted.up("fresh-orphan")
    nspawn = int((droplet.home / "nspawn.pid").read_text())
    netns = Path("/run/netns") / droplet.netns
    [init] = container_inits(netns)
    for pid, program in ((droplet.supervisor_pid, "tests.freshos.supervisor"), (nspawn, "systemd-nspawn")):
        assert is_ours(pid, program, str(droplet.home))
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid, 10)
    assert container_inits(netns) == [init]  # the orphan this is about

    booted.destroy("fresh-orphan")

    assert wait_gone(init, 10)  # ended (its zombie is the host's init's to reap)
    assert not droplet.home.exists() and droplet.netns not in netns_names()
