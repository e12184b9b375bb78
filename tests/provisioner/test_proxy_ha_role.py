"""The proxy_ha role (keepalived in front of two proxies sharing a DigitalOcean reserved
IP), rendered by ansible-runner into a temporary root; then its files are used for
real: `keepalived -t` checks the configuration, the track script asks a real /health,
and the notify script moves the reserved IP on the stand-in DigitalOcean API."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support import ROOT
from tests.support.playbooks import files_containing, output, render
from tests.support.provisioner import TOKEN

IP = "203.0.113.10"


def ha_vars(tmp_path: Path, **extra: object) -> dict[str, object]:
    token = tmp_path / "secret" / "do-token"
    token.parent.mkdir(exist_ok=True)
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    return {
        "switchyard_ha_reserved_ip": IP,
        "switchyard_ha_self_ip": "10.0.0.11",
        "switchyard_ha_peers": ["10.0.0.12"],
        "switchyard_ha_priority": 150,
        "switchyard_ha_do_token_file": str(token),
        **extra,
    }


@pytest.mark.slow
@pytest.mark.timeout(180)  # two ansible-runner runs and five CLI processes
async def test_keepalived_config_track_script_and_notify_move_the_reserved_ip(
    fake_do: FakeDigitalOcean, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    droplet = await asyncio.to_thread(_create_droplet, fake_do)
    fake_do.add_reserved_ip(IP)  # unassigned, or held by the other proxy's droplet
    health = {"status": 200}

    async def health_page(_: web.Request) -> web.Response:
        return web.Response(status=health["status"], text="ok")

    async def droplet_id(_: web.Request) -> web.Response:
        return web.Response(text=f"{droplet}\n")

    site = web.Application()
    site.router.add_get("/health", health_page)
    site.router.add_get("/metadata/v1/id", droplet_id)
    server = await aiohttp_server(site)
    local = f"http://127.0.0.1:{server.port}"

    root = tmp_path / "root"
    done = await asyncio.to_thread(
        render, "proxy_ha.yml", "proxy", tmp_path / "run", root,
        **ha_vars(tmp_path, switchyard_ha_health_url=f"{local}/health", switchyard_ha_end_point=fake_do.url,
                  switchyard_ha_metadata_url=f"{local}/metadata/v1/id", switchyard_install_dir=str(ROOT),
                  switchyard_ha_python=sys.executable, switchyard_ha_interface=_an_interface()),
    )  # fmt: skip
    assert done.status == "successful", output(done)
    conf_file = root / "etc/keepalived/keepalived.conf"
    conf = [line.strip() for line in conf_file.read_text().splitlines()]
    for line in (
        "vrrp_script switchyard_proxy {",
        'script "/etc/keepalived/switchyard/check-proxy.sh"',
        "vrrp_instance switchyard {",
        "state BACKUP",
        "priority 150",
        "unicast_src_ip 10.0.0.11",
        "10.0.0.12",
        "weight -60",
        f"{IP}/32 dev lo scope host",
        'notify_master "/etc/keepalived/switchyard/notify.sh master"',
    ):
        assert line in conf, line
    token_file = root / "etc/switchyard/do-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert sorted(files_containing(tmp_path / "run", TOKEN)) == []
    assert TOKEN not in output(done)
    assert (root / str(ROOT).lstrip("/") / "provisioner/reserved_ip.py").is_file()

    # keepalived itself accepts the configuration (its scripts at their rendered paths).
    scripts = root / "etc/keepalived/switchyard"
    checked = tmp_path / "keepalived.conf"
    checked.write_text(conf_file.read_text().replace("/etc/keepalived/switchyard", str(scripts)))
    keepalived = shutil.which("keepalived") or "/usr/sbin/keepalived"
    test = await asyncio.to_thread(
        subprocess.run, [keepalived, "-t", "-f", str(checked)], capture_output=True, text=True, timeout=30
    )
    assert test.returncode == 0, test.stdout + test.stderr

    # The track script follows the proxy's /health.
    assert (await _run(scripts / "check-proxy.sh")).returncode == 0
    health["status"] = 503
    assert (await _run(scripts / "check-proxy.sh")).returncode != 0

    # The notify script, as keepalived calls it on becoming MASTER, brings the IP here.
    notify = scripts / "notify.sh"
    notify.write_text(notify.read_text().replace("/etc/switchyard/do-token", str(token_file)))
    assert (await _run(notify, "backup")).returncode == 0 and fake_do.reserved_ips[IP] is None
    moved = await _run(notify, "master")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert fake_do.reserved_ips[IP] == droplet
    assert f"reserved IP {IP}: assigned to droplet {droplet}" in moved.stdout
    assert TOKEN not in moved.stdout + moved.stderr


@pytest.mark.slow
def test_a_proxy_without_a_peer_or_token_is_refused(tmp_path: Path) -> None:
    done = render(
        "proxy_ha.yml", "proxy", tmp_path / "run", tmp_path / "root",
        **ha_vars(tmp_path, switchyard_ha_peers=["10.0.0.11"], switchyard_ha_reserved_ip="203.0.113"),
    )  # fmt: skip
    assert done.status == "failed"
    assert "reserved_ip=203.0.113 must be the reserved IPv4" in output(done)
    assert not (tmp_path / "root").exists()


async def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, ["/bin/sh", str(script), *args], capture_output=True, text=True, timeout=60
    )


def _an_interface() -> str:
    """One of this machine's non-loopback interfaces: `keepalived -t` checks that it exists."""
    names = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    if not names:
        pytest.skip("no network interface besides lo for keepalived -t to check")
    return names[0]


def _create_droplet(fake: FakeDigitalOcean) -> int:
    body = {"name": "proxy-a", "region": "nyc3", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}
    request = urllib.request.Request(
        fake.url + "droplets", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.loads(response.read())["droplet"]["id"])
