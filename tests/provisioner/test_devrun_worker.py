"""`make run` starts a worker with the local provider (the real run is in tests/test_devrun.py)."""

from __future__ import annotations

from devrun.commands import RedisArgs, hints, worker_command


def test_worker_command_uses_the_local_provider_and_retires_its_servers_on_exit() -> None:
    redis = RedisArgs("redis://127.0.0.1:7000/0", "redis://127.0.0.1:7000/0", "mine:")
    assert worker_command("/venv/bin/python", redis) == [
        "/venv/bin/python", "-u", "-m", "provisioner", "worker", "--provider", "local", "--destroy-on-exit",
        "--redis-url", "redis://127.0.0.1:7000/0", "--key-prefix", "mine:",
    ]  # fmt: skip


def test_hints_say_how_to_add_and_list_servers() -> None:
    url = "redis://127.0.0.1:7000/0"
    text = hints(
        python="python",
        root="/src",
        redis=RedisArgs(url, url),
        backends=[],
        proxy=("127.0.0.1:8080", "127.0.0.1:8081"),
        export=True,
    )
    assert f"python -m provisioner up --pool production --provider local --redis-url {url}" in text
    assert f"python -m provisioner list --redis-url {url}" in text
