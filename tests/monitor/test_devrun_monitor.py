"""`make run` starts the proxy host's monitor (the real run is in tests/test_devrun.py)."""

from __future__ import annotations

from devrun.commands import RedisArgs, hints, monitor_command


def test_monitor_command_watches_the_proxy_host_on_the_runs_redis() -> None:
    redis = RedisArgs("redis://127.0.0.1:7000/0", "redis://127.0.0.1:7000/0", "mine:")
    # The proxy's own process, not the whole (busy) machine.
    assert monitor_command("/venv/bin/python", redis, 4242) == [
        "/venv/bin/python", "-u", "-m", "monitor", "run", "--role", "proxy", "--name", "local-proxy",
        "--source", "pid:4242", "--redis-url", "redis://127.0.0.1:7000/0", "--key-prefix", "mine:",
    ]  # fmt: skip


def test_hints_say_how_to_see_the_monitor() -> None:
    url = "redis://127.0.0.1:7000/0"
    text = hints(
        python="python",
        root="/src",
        redis=RedisArgs(url, url),
        backends=[],
        proxy=("127.0.0.1:8080", "127.0.0.1:8081"),
        export=True,
    )
    assert f"python -m monitor status --redis-url {url}" in text
