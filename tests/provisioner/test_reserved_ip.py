"""`python -m provisioner reserved-ip`, the command keepalived's notify script runs on the
proxy that becomes master, against the stand-in DigitalOcean API (every request and
response checked against the OpenAPI contract by the fixture)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support import ROOT
from tests.support.provisioner import TOKEN

IP = "203.0.113.10"


def _create(fake: FakeDigitalOcean, name: str) -> int:
    body = {"name": name, "region": "nyc3", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}
    request = urllib.request.Request(
        fake.url + "droplets", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:  # the stand-in on 127.0.0.1
        return int(json.loads(response.read())["droplet"]["id"])


async def cli(fake: FakeDigitalOcean, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "DIGITALOCEAN_"))}
    env["DIGITALOCEAN_END_POINT"] = fake.url
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "provisioner", "reserved-ip", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def token_file(tmp_path: Path, token: str = TOKEN, mode: int = 0o600) -> str:
    path = tmp_path / f"do-token-{mode:o}"
    path.write_text(token + "\n")
    path.chmod(mode)
    return str(path)


@pytest.mark.timeout(180)  # each CLI process imports the whole provisioner
async def test_the_reserved_ip_moves_to_the_new_master_and_waits_for_the_action(
    fake_do: FakeDigitalOcean, tmp_path: Path
) -> None:
    a, b = (
        await asyncio.to_thread(_create, fake_do, "proxy-a"),
        await asyncio.to_thread(_create, fake_do, "proxy-b"),
    )
    fake_do.add_reserved_ip(IP, a)
    token = token_file(tmp_path)

    done = await cli(fake_do, "assign", "--ip", IP, "--droplet-id", str(b), "--token-file", token)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"reserved IP {IP}: assigned to droplet {b} (action ")
    assert fake_do.reserved_ips[IP] == b
    action = f"/v2/reserved_ips/{IP}/actions"
    assert ("POST", action) in fake_do.calls
    # It waited: the action was in progress when asked for, and read again until completed.
    assert any(m == "GET" and p.startswith(action + "/") for m, p in fake_do.calls)

    posts = fake_do.calls.count(("POST", action))
    again = await cli(fake_do, "assign", "--ip", IP, "--droplet-id", str(b), "--token-file", token)
    assert again.returncode == 0 and "already assigned" in again.stdout
    assert fake_do.calls.count(("POST", action)) == posts

    shown = await cli(fake_do, "show", "--ip", IP, "--token-file", token)
    assert json.loads(shown.stdout) == {"ip": IP, "droplet_id": b, "region": "nyc3", "locked": False}

    gone = await cli(fake_do, "unassign", "--ip", IP, "--token-file", token)
    assert gone.returncode == 0, gone.stderr
    assert fake_do.reserved_ips[IP] is None
    assert TOKEN not in done.stdout + done.stderr + shown.stdout + gone.stdout


async def test_self_is_the_droplet_the_metadata_service_names(
    fake_do: FakeDigitalOcean, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    b = await asyncio.to_thread(_create, fake_do, "proxy-b")
    fake_do.add_reserved_ip(IP)

    async def droplet_id(_: web.Request) -> web.Response:
        return web.Response(text=f"{b}\n")

    metadata = web.Application()
    metadata.router.add_get("/metadata/v1/id", droplet_id)
    server = await aiohttp_server(metadata)
    done = await cli(
        fake_do, "assign", "--ip", IP, "--droplet-id", "self", "--token-file", token_file(tmp_path),
        "--metadata-url", f"http://127.0.0.1:{server.port}/metadata/v1/id",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert fake_do.reserved_ips[IP] == b


@pytest.mark.timeout(180)  # seven CLI processes
async def test_bad_input_and_refusals_are_one_line_without_the_token(
    fake_do: FakeDigitalOcean, tmp_path: Path
) -> None:
    fake_do.add_reserved_ip(IP)
    (tmp_path / "wrong").mkdir()
    cases = [
        (["assign", "--ip", IP, "--droplet-id", "1", "--token-file", token_file(tmp_path, mode=0o644)], 2,
         "must be yours with mode 0600"),
        (["assign", "--ip", "203.0.113", "--droplet-id", "1", "--token-file", token_file(tmp_path)], 2,
         "is not an IPv4 address"),
        (["assign", "--ip", IP, "--droplet-id", "x1", "--token-file", token_file(tmp_path)], 2,
         "is not a droplet id"),
        (["assign", "--ip", IP, "--token-file", token_file(tmp_path)], 2, "assign needs --droplet-id"),
        (["show", "--ip", IP, "--token-file", token_file(tmp_path / "wrong", "not-the-token")], 1,
         f"reserved IP {IP}: GET reserved_ips/{IP} answered 401: Unable to authenticate you"),
        (["assign", "--ip", IP, "--droplet-id", "99", "--token-file", token_file(tmp_path)], 1,
         "answered 422: Droplet 99 was not found"),
        (["show", "--ip", "203.0.113.99", "--token-file", token_file(tmp_path)], 1, "answered 404"),
    ]  # fmt: skip
    for args, code, line in cases:
        done = await cli(fake_do, *args)
        assert done.returncode == code, (args, done.stderr)
        assert done.stderr.startswith("error: ") and line in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert TOKEN not in done.stderr + done.stdout
