"""The push webhook's listener under a slowloris: `python -m provisioner webhook` with 128
file descriptors, 200 connections dripping a head from a disallowed address (127.0.0.2)
and slow heads from an allowed one (127.0.0.1). The disallowed are closed at accept, the
slow at the head timeout, the connection count is capped, and a signed push is answered
throughout."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import resource
import secrets
import time
import uuid
from pathlib import Path

import pytest

from tests.deploy.test_webhook import event, headers, post
from tests.support.deploy import deploy_env, start_webhook, stop_webhook
from tests.support.ports import free_port
from tests.support.wait import eventually

SECRET = "whsec-" + secrets.token_hex(8)
READ_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 32
DRIP = b"POST /push HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Slow-%d: v\r\n" % i for i in range(500))


def _few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


async def held(port: int, source: str, *, drip_s: float = 0.2, opened: list[str] | None = None) -> float:
    """Connect from `source` and drip a head that never ends: seconds until the webhook
    closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    clock = time.monotonic()
    if opened is not None:
        opened.append(source)

    async def drip() -> None:
        with contextlib.suppress(OSError):
            for byte in itertools.cycle(DRIP):
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(drip_s)

    dripping = asyncio.create_task(drip())
    try:
        async with asyncio.timeout(READ_TIMEOUT_S + 10):
            with contextlib.suppress(ConnectionResetError):
                while await reader.read(4096):
                    pass
        return time.monotonic() - clock
    finally:
        dripping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dripping
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def attacker(port: int, stop: asyncio.Event, holds: list[float], opened: list[str]) -> None:
    """From the disallowed address, connect and drip again and again until `stop`."""
    while not stop.is_set():
        holds.append(await held(port, "127.0.0.2", opened=opened))


async def signed_push(url: str) -> tuple[int, float]:
    # A new commit each time: the same signed body twice is a replay.
    body = event("refs/heads/feature", "a" * 40, secrets.token_hex(20))
    clock = time.monotonic()
    status, _ = await post(url, body, headers(body, SECRET, str(uuid.uuid4())))
    return status, time.monotonic() - clock


@pytest.mark.timeout(90)
async def test_slow_and_disallowed_connections_do_not_stop_a_signed_push(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = deploy_env(
        redis_url,
        tmp_path,
        PROVISIONER_PUSH_WEBHOOK_SECRET=SECRET,
        PROVISIONER_DEPLOY_REPO=str(tmp_path / "unused.git"),
        PROVISIONER_WEBHOOK_NETWORKS="127.0.0.1/32",
        PROVISIONER_WEBHOOK_READ_TIMEOUT_S=str(READ_TIMEOUT_S),
        PROVISIONER_WEBHOOK_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        # The signed pushes are a feature branch's: answered at once, deploying nothing.
        PROVISIONER_BRANCH_PREVIEWS="false",
    )
    log_path = tmp_path / "webhook.log"
    # Only setrlimit, before exec.
    proc = start_webhook(env, port, log_path, preexec_fn=_few_descriptors)
    url = f"http://127.0.0.1:{port}/push"
    try:
        assert (await signed_push(url))[0] == 200

        stop, refused, opened = asyncio.Event(), list[float](), list[str]()
        attack = [asyncio.create_task(attacker(port, stop, refused, opened)) for _ in range(200)]
        slow = [asyncio.create_task(held(port, "127.0.0.1", drip_s=0.5, opened=opened)) for _ in range(20)]
        await eventually(
            lambda: opened.count("127.0.0.1") == 20 and opened.count("127.0.0.2") >= 200,
            10,
            "the attack to take hold",
        )
        status, took = await signed_push(url)
        assert status == 200 and took < 2.0, (status, took)
        stop.set()
        await asyncio.gather(*attack)
        timed_out = await asyncio.gather(*slow)
        # Closed at accept (well before the head timeout), on a 2-core machine under load.
        assert max(refused) < READ_TIMEOUT_S / 2, sorted(refused)[-5:]
        assert all(READ_TIMEOUT_S - 0.2 < t < READ_TIMEOUT_S + 2.0 for t in timed_out), timed_out

        # The cap: of 40 slow heads at once, those over it are closed at accept; once the
        # head timeout frees the slots a push is answered again.
        over = await asyncio.gather(*(held(port, "127.0.0.1", drip_s=0.5) for _ in range(40)))
        at_once = [t for t in over if t < READ_TIMEOUT_S / 2]
        assert len(at_once) == 40 - MAX_CONNECTIONS, sorted(over)
        assert (await signed_push(url))[0] == 200

        # A head on time and a body that never comes: 408 at the read timeout.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        clock = time.monotonic()
        writer.write(b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = await asyncio.wait_for(reader.read(), READ_TIMEOUT_S + 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ") and b'"too_slow"' in answer, answer
        assert READ_TIMEOUT_S - 0.2 < time.monotonic() - clock < READ_TIMEOUT_S + 2.0
        assert proc.poll() is None
    finally:
        code = stop_webhook(proc, 30)
    output = log_path.read_text()
    assert code == 0, output
    assert "Too many open files" not in output and "no request head from 127.0.0.1" in output
