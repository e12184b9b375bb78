"""`python -m proxy` control commands, run as real subprocesses against redis-server."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from state import ScaleQueue, StateStore
from tests.support.ports import free_port
from tests.support.proxy import json_lines, run_cli

Result = subprocess.CompletedProcess[str]


async def cli(redis_url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run the CLI off the event loop, with REDIS_URL pointing at the test server."""
    return await asyncio.to_thread(run_cli, *args, env={"REDIS_URL": redis_url, **(env or {})})


def ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def one_error_line(result: Result, code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


async def audit_length(store: StateStore) -> int:
    return int(await store.redis.xlen(store.keys.audit))


def test_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "pool", "weight", "flag", "alert", "status", "audit"):
        assert command in result.stdout
    assert run_cli("pool", "add", "--help").returncode == 0


def test_missing_argument_is_an_argparse_usage_error() -> None:
    result = run_cli("weight")
    assert result.returncode == 2
    assert result.stderr.startswith("usage:")
    assert "Traceback" not in result.stderr


async def test_pool_add_list_remove(redis_url: str, store: StateStore) -> None:
    url = "http://127.0.0.1:9001"
    assert ok(await cli(redis_url, "pool", "add", "production", url + "/")) == (
        f"pool:production: [] -> [{url}]\n"
    )
    assert ok(await cli(redis_url, "pool", "add", "production", url)) == f"pool:production: already [{url}]\n"
    ok(await cli(redis_url, "pool", "add", "staging", "http://[::1]:9002"))

    listed = json.loads(ok(await cli(redis_url, "pool", "list", "--json")))
    assert listed == {"production": [url], "staging": ["http://[::1]:9002"]}
    assert ok(await cli(redis_url, "pool", "list")).splitlines() == [
        f"production\t{url}",
        "staging\thttp://[::1]:9002",
    ]

    ok(await cli(redis_url, "pool", "remove", "production", url))
    snap = await store.read_snapshot()
    assert snap.production == ()
    assert snap.staging == ("http://[::1]:9002",)
    assert snap.version == 3
    assert all(e.who.startswith("cli:") for e in await store.audit_log())


async def test_weight(redis_url: str, store: StateStore) -> None:
    assert ok(await cli(redis_url, "weight", "50")) == "weight: 30 -> 50\n"
    assert (await store.read_snapshot()).weight == 50
    assert ok(await cli(redis_url, "weight", "0")) == "weight: 50 -> 0\n"
    assert (await store.read_snapshot()).weight == 0


async def test_flags_set_routes_and_list(redis_url: str, store: StateStore) -> None:
    assert ok(await cli(redis_url, "flag", "set", "beta", "on")) == "flag:beta: off -> on\n"
    ok(await cli(redis_url, "flag", "routes", "beta", "/beta/", "/b"))
    ok(await cli(redis_url, "flag", "routes", "disableSET"))  # no paths: blocks nothing

    listed = json.loads(ok(await cli(redis_url, "flag", "list", "--json")))
    assert listed == {
        "beta": {"on": True, "routes": ["/b", "/beta"]},
        "disableSET": {"on": False, "routes": []},
    }
    assert ok(await cli(redis_url, "flag", "list")).splitlines() == [
        "beta\ton\t/b,/beta",
        "disableSET\toff\t-",
    ]

    ok(await cli(redis_url, "flag", "set", "beta", "off"))
    snap = await store.read_snapshot()
    assert dict(snap.flags) == {"beta": False}
    assert dict(snap.flag_routes) == {"beta": ("/b", "/beta"), "disableSET": ()}


async def test_alert_set_and_clear(redis_url: str, store: StateStore) -> None:
    ok(await cli(redis_url, "alert", "set", "--reason", "bad deploy"))
    alert = (await store.read_snapshot()).alert
    assert alert is not None
    assert alert.reason == "bad deploy"
    assert alert.by.startswith("cli:")
    assert "ON since" in ok(await cli(redis_url, "status"))

    ok(await cli(redis_url, "alert", "clear"))
    assert (await store.read_snapshot()).alert is None
    assert ok(await cli(redis_url, "alert", "clear")) == "alert: already off\n"


async def test_a_human_clears_the_monitors_alert(redis_url: str, store: StateStore) -> None:
    await store.set_alert("error rate", by="monitor")
    ok(await cli(redis_url, "alert", "clear"))
    assert (await store.read_snapshot()).alert is None


async def test_status_json_lists_instances(redis_url: str, store: StateStore) -> None:
    await store.add_backend("production", "http://127.0.0.1:9001")
    await store.heartbeat(
        "host:42:8080", {"pid": 42, "listen": "127.0.0.1:8080", "version": 1, "stale": False}, ttl_s=60
    )
    body = json.loads(ok(await cli(redis_url, "status", "--json")))
    assert body["version"] == 1
    assert body["pools"] == {"production": ["http://127.0.0.1:9001"], "staging": []}
    assert body["weight"] == 30
    assert body["alert"] is None
    assert body["instances"] == [
        {"id": "host:42:8080", "pid": 42, "listen": "127.0.0.1:8080", "version": 1, "stale": False}
    ]

    text = ok(await cli(redis_url, "status"))
    assert "state version 1" in text
    assert "host:42:8080 listening on 127.0.0.1:8080 (in sync)" in text
    assert "(effective now: 0%)" in text  # no staging backend


async def test_status_without_proxies(redis_url: str) -> None:
    assert "none running" in ok(await cli(redis_url, "status"))
    assert json.loads(ok(await cli(redis_url, "status", "--json")))["instances"] == []


async def test_audit(redis_url: str) -> None:
    ok(await cli(redis_url, "weight", "40"))
    ok(await cli(redis_url, "flag", "set", "beta", "on"))
    entries = json_lines(ok(await cli(redis_url, "audit", "--json")))
    assert [(e["what"], e["before"], e["after"]) for e in entries] == [  # type: ignore[index]
        ("weight", 30, 40),
        ("flag:beta", None, True),
    ]
    assert all(str(e["who"]).startswith("cli:") for e in entries)  # type: ignore[index]
    assert len(json_lines(ok(await cli(redis_url, "audit", "--json", "--limit", "1")))) == 1
    text = ok(await cli(redis_url, "audit")).splitlines()
    assert len(text) == 2
    assert text[0].endswith("weight: 30 -> 40")
    assert text[1].endswith("flag:beta: off -> on")


async def test_audit_shows_entries_of_the_other_programs(redis_url: str, store: StateStore) -> None:
    queue = ScaleQueue(store.redis, store.keys, actor="monitor:web-1")
    req = await queue.request("production", "cpu 93%")
    assert req is not None
    await store.set_alert("hot", by="monitor:web-1")
    text = ok(await cli(redis_url, "audit")).splitlines()
    assert text[0].endswith("scale:production: - -> requested=cpu 93%")
    assert "monitor:web-1" in text[0]
    assert text[1].endswith("alert: off -> on (by monitor:web-1: hot)")


BAD_INPUT = [
    ("weight", "130"),
    ("weight", "-1"),
    ("weight", "abc"),
    ("pool", "add", "prod", "http://x:1"),
    ("pool", "add", "production", "127.0.0.1:9001"),
    ("pool", "add", "production", "https://127.0.0.1:9001"),
    ("pool", "remove", "production", "http://x:1/path"),
    ("flag", "set", "1bad", "on"),
    ("flag", "routes", "beta", "noslash"),
    ("flag", "routes", "1bad", "/x"),
    ("audit", "--limit", "0"),
]


@pytest.mark.parametrize("args", BAD_INPUT, ids=" ".join)
async def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    redis_url: str, store: StateStore, args: tuple[str, ...]
) -> None:
    await store.add_backend("production", "http://x:1")
    await store.set_weight(20)
    before = await store.read_snapshot()
    audited = await audit_length(store)

    result = await cli(redis_url, *args)

    one_error_line(result, 2)
    assert result.stdout == ""
    assert await store.read_snapshot() == before
    assert await audit_length(store) == audited


def test_unreachable_redis_with_a_password_never_shows_it() -> None:
    dead = f"redis://:Pw-secret-7@127.0.0.1:{free_port()}/0"
    result = run_cli("status", env={"REDIS_URL": dead})
    line = one_error_line(result, 1)
    assert "Pw-secret-7" not in result.stderr + result.stdout
    assert f"redis://:***@127.0.0.1:{dead.rsplit(':', 1)[1]}" in line


@pytest.mark.parametrize(
    "args",
    [("status",), ("status", "--json"), ("weight", "50"), ("pool", "list"), ("alert", "set"), ("audit",)],
    ids=" ".join,
)
def test_unreachable_redis_exits_1_with_one_line(args: tuple[str, ...]) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli(*args, "--redis-url", dead)
    line = one_error_line(result, 1)
    assert "Redis" in line
    assert dead in line
    assert result.stdout == ""


async def test_a_redis_refusal_exits_1_with_one_line(redis_url: str, store: StateStore) -> None:
    await store.redis.set(store.keys.flags, "not a hash")  # WRONGTYPE for every flag command
    line = one_error_line(await cli(redis_url, "flag", "set", "beta", "on"), 1)
    assert "Redis" in line


async def test_redis_url_flag_beats_the_environment(redis_url: str, store: StateStore) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    ok(await asyncio.to_thread(run_cli, "weight", "70", "--redis-url", redis_url, env={"REDIS_URL": dead}))
    assert (await store.read_snapshot()).weight == 70


async def test_key_prefix_flag_and_env(redis_url: str, store: StateStore) -> None:
    ok(await cli(redis_url, "weight", "70", "--key-prefix", "blue:"))
    ok(await cli(redis_url, "weight", "80", env={"PROXY_KEY_PREFIX": "green:"}))
    assert (await store.read_snapshot()).weight == 30
    assert await store.redis.get("blue:weight") == "70"
    assert await store.redis.get("green:weight") == "80"


@pytest.mark.parametrize(
    "env", [{"PROXY_FOO": "1"}, {"REDIS_URL": "http://127.0.0.1:6379"}], ids=["unknown", "bad-url"]
)
async def test_bad_environment_exits_2_with_one_line(redis_url: str, env: dict[str, str]) -> None:
    line = one_error_line(await cli(redis_url, "status", env=env), 2)
    assert next(iter(env)) in line


@pytest.mark.parametrize(
    "text",
    [
        "conect_timeout_s = 5\n",
        'admin_token = "s3cret"\n',
        # A non-table `proxy` key once raised AttributeError: a traceback, not one line.
        "proxy = 5\n",
    ],
    ids=["unknown-key", "secret-in-file", "proxy-not-a-table"],
)
async def test_bad_config_file_exits_2_with_one_line(redis_url: str, tmp_path: Path, text: str) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(text)
    line = one_error_line(await cli(redis_url, "status", "--config", str(config)), 2)
    assert str(config) in line
    assert "s3cret" not in line
