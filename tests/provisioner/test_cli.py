"""`python -m provisioner` as a child process: usage errors, up / list / down by hand with
the local provider, signed notifications, and secrets that reach neither the output,
the log, nor the processes it starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from provisioner.notify import SIGNATURE_HEADER, sign
from provisioner.scale.local import app_pid
from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.provisioner import provisioner_cli, stop_apps

TOKEN = "dop_v1_" + "cli-secret-0123456789abcdef"
HOOK_SECRET = "whsec-" + "cli-0123456789"


def clean_env(**extra: str) -> dict[str, str]:
    own = ("PROVISIONER_", "DIGITALOCEAN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own) and k != "REDIS_URL"}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        cwd=ROOT,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        ([], {}, 2, "the following arguments are required: COMMAND"),
        (["up"], {}, 2, "the following arguments are required: --pool"),
        (["up", "--pool", "canary"], {}, 2, "error: unknown pool 'canary': use production or staging"),
        (["down", "Not An Id"], {}, 2, "error: server id 'Not An Id' is not valid"),
        (["down", "http://127.0.0.1:0"], {}, 2, "error: backend URL 'http://127.0.0.1:0' has port 0"),
        (
            ["list"],
            {"PROVISIONER_HARD_CAP": "lots"},
            2,
            "error: hard_cap (from PROVISIONER_HARD_CAP) is 'lots'",
        ),
        (
            ["up", "--pool", "production", "--provider", "digitalocean"],
            {},
            2,
            "error: provider digitalocean needs a token",
        ),
        (["list"], {"REDIS_URL": "redis://127.0.0.1:1/0"}, 1, "error: Redis is unreachable"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    done = cli(*args, env=clean_env(**env))
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    if code == 1 or message.startswith("error:"):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_list_and_down_when_nothing_is_managed(redis_url: str) -> None:
    env = clean_env(REDIS_URL=redis_url)
    assert cli("list", env=env).stdout == "no servers\n"
    assert json.loads(cli("list", "--json", env=env).stdout) == []
    done = cli("down", "http://127.0.0.1:9001", "--provider", "local", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("error: http://127.0.0.1:9001 is not a server the provisioner manages")


@pytest.fixture
async def hook() -> AsyncIterator[tuple[str, list[tuple[bytes, str]]]]:
    received: list[tuple[bytes, str]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get(SIGNATURE_HEADER, "")))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook", received
    await runner.cleanup()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Path]:
    """Where the CLI's local servers go; whatever app a failed test leaves there is ended."""
    yield tmp_path / "servers"
    stop_apps(tmp_path)


async def test_up_list_down_by_hand(
    redis_url: str, servers: Path, hook: tuple[str, list[tuple[bytes, str]]]
) -> None:
    hook_url, received = hook
    env = clean_env(
        REDIS_URL=redis_url,
        PROVISIONER_LOCAL_DIR=str(servers),
        PROVISIONER_NOTIFY_WEBHOOK_URL=hook_url,
        PROVISIONER_LOG_LEVEL="DEBUG",
        # Secrets in the environment, as in production: they must go nowhere else.
        DIGITALOCEAN_TOKEN=TOKEN,
        PROVISIONER_WEBHOOK_SECRET=HOOK_SECRET,
    )
    code, out, err = await provisioner_cli("up", "--pool", "production", "--provider", "local", env=env)
    assert code == 0, err
    server_id, url = out.strip().split("\t")
    assert url.startswith("http://127.0.0.1:")

    code, listed, _ = await provisioner_cli("list", "--json", env=env)
    (record,) = json.loads(listed)
    assert (record["id"], record["url"], record["state"], record["provider"]) == (
        server_id,
        url,
        "active",
        "local",
    )
    assert set(record["timings"]) == {"create", "active", "reachable", "configure", "health", "register"}
    pid = app_pid(servers / server_id, int(url.rsplit(":", 1)[1]))
    assert pid is not None
    app_env = Path(f"/proc/{pid}/environ").read_bytes()
    assert TOKEN.encode() not in app_env and HOOK_SECRET.encode() not in app_env

    code, out_down, err_down = await provisioner_cli("down", url, "--provider", "local", env=env)
    assert code == 0, err_down
    assert out_down.startswith(f"{server_id}\t{url}\tremoved")
    assert not (servers / server_id).exists()
    assert not os.path.exists(f"/proc/{pid}/cwd")
    code, listed, _ = await provisioner_cli("list", env=env)
    assert listed == "no servers\n"

    events = [json.loads(body)["event"] for body, _ in received]
    assert events == ["server.added", "server.removed"]
    for body, signature in received:
        assert signature == sign(HOOK_SECRET, body)
    for text in (out, err, listed, out_down, err_down, *(b.decode() for b, _ in received)):
        assert TOKEN not in text and HOOK_SECRET not in text
    assert f"provisioning {server_id}" in err  # the log went to stderr, at DEBUG even
    assert free_port() > 0
