"""devrun: the store choice and the command lines as plain values, then one real run."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devrun.__main__ import main as devrun_main
from devrun.commands import (
    DEFAULT_KEY_PREFIX,
    RedisArgs,
    app_command,
    hints,
    parse_address,
    pool_command,
    reachable,
    serve_command,
)
from devrun.procs import Child, Console, StartError, Stopped, StopSignal, wait_until
from devrun.store import (
    LOCAL_URL,
    StoreChoice,
    StoreKind,
    choose_store,
    open_store,
    ping,
    redact,
    redis_server_command,
)
from state import KeySpace
from tests.support import ROOT, wait
from tests.support.ports import free_port

PY = "/venv/bin/python"


def never() -> bool:
    raise AssertionError("the local Redis must not be probed when $REDIS_URL is set")


# The store choice


def test_redis_url_wins_without_probing_the_local_port() -> None:
    choice = choose_store("redis://elsewhere:6380/2", never, "/usr/bin/redis-server")
    assert choice == StoreChoice(StoreKind.ENV, url="redis://elsewhere:6380/2")
    assert choice.shared


def test_local_redis_is_used_when_it_answers() -> None:
    choice = choose_store(None, lambda: True, "/usr/bin/redis-server")
    assert choice == StoreChoice(StoreKind.LOCAL, url=LOCAL_URL)
    assert choice.shared


@pytest.mark.parametrize("env_url", [None, ""])
def test_embedded_redis_server_when_nothing_answers(env_url: str | None) -> None:
    choice = choose_store(env_url, lambda: False, "/usr/bin/redis-server")
    assert choice == StoreChoice(StoreKind.REDIS_SERVER, redis_server="/usr/bin/redis-server")
    assert not choice.shared


def test_fakeredis_when_redis_server_is_not_installed() -> None:
    choice = choose_store(None, lambda: False, None)
    assert choice == StoreChoice(StoreKind.FAKEREDIS)
    assert not choice.shared


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@db.example:6380/1", "redis://:***@db.example:6380/1"),
        ("rediss://user:s3cret@db.example/0", "rediss://user:***@db.example/0"),
        ("redis://user@db.example:6379", "redis://user@db.example:6379"),
    ],
)
def test_redact_masks_only_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_embedded_redis_server_keeps_nothing_on_disk() -> None:
    argv = redis_server_command("/usr/bin/redis-server", 12345)
    assert argv[0] == "/usr/bin/redis-server"
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs["--port"] == "12345"
    assert pairs["--bind"] == "127.0.0.1"
    assert pairs["--save"] == ""
    assert pairs["--appendonly"] == "no"


# The command lines


def test_app_command() -> None:
    argv = app_command(PY, "v2", 9002, "royalblue")
    assert argv[:2] == [PY, "-u"]
    assert argv[2:4] == ["-m", "examples.app"]
    assert argv[4:] == ["--version", "v2", "--listen", "127.0.0.1:9002", "--color", "royalblue"]


def test_pool_command_names_redis_and_prefix() -> None:
    redis_args = RedisArgs("redis://127.0.0.1:7000/0", "redis://127.0.0.1:7000/0")
    argv = pool_command(PY, "add", "staging", "http://127.0.0.1:9002", redis_args)
    assert argv == [
        PY,
        "-m",
        "proxy",
        "pool",
        "add",
        "staging",
        "http://127.0.0.1:9002",
        "--redis-url",
        "redis://127.0.0.1:7000/0",
        "--key-prefix",
        DEFAULT_KEY_PREFIX,
    ]


def test_serve_command() -> None:
    redis_args = RedisArgs("redis://127.0.0.1:7000/0", "redis://127.0.0.1:7000/0", "mine:")
    argv = serve_command(PY, "127.0.0.1:8080", "127.0.0.1:8081", redis_args)
    assert argv[:5] == [PY, "-u", "-m", "proxy", "serve"]
    assert argv[5:] == [
        "--listen",
        "127.0.0.1:8080",
        "--admin-listen",
        "127.0.0.1:8081",
        "--redis-url",
        "redis://127.0.0.1:7000/0",
        "--key-prefix",
        "mine:",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:8081", ("::1", 8081)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["8080", ":8080", "host:", "host:0", "host:65536", "host:http"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_address(text)


@pytest.mark.parametrize(
    ("address", "expected"),
    [("0.0.0.0:8080", "127.0.0.1:8080"), ("127.0.0.1:8080", "127.0.0.1:8080"), ("[::1]:8081", "[::1]:8081")],
)
def test_reachable(address: str, expected: str) -> None:
    assert reachable(address) == expected


BACKENDS = [("production", "v1", "http://127.0.0.1:9001"), ("staging", "v2", "http://127.0.0.1:9002")]


def test_hints_for_an_embedded_store_fill_in_the_url() -> None:
    url = "redis://127.0.0.1:7000/0"
    text = hints(
        python=".venv/bin/python",
        root="/src",
        redis=RedisArgs(url, url),
        backends=BACKENDS,
        proxy=("127.0.0.1:8080", "127.0.0.1:8081"),
        export=True,
    )
    assert text.count(f"export REDIS_URL={url}") == 1
    assert "for i in $(seq 20); do curl -s 127.0.0.1:8080/version; done | sort | uniq -c" in text
    for command in ("weight 50", "alert set", "alert clear", "status"):
        assert f".venv/bin/python -m proxy {command} --redis-url {url}" in text
    assert "curl 127.0.0.1:8080/disable/1" in text
    assert "curl -i '127.0.0.1:8080/set?key=a&value=1'" in text
    assert "curl 127.0.0.1:8081/status" in text
    assert "curl 127.0.0.1:8081/metrics" in text
    assert "http://127.0.0.1:9001" in text and "http://127.0.0.1:9002" in text
    assert "--key-prefix" not in text  # the default prefix needs no flag


def test_hints_for_redis_url_never_print_it() -> None:
    shared_url = "redis://:s3cret@db.example:6379/0"
    text = hints(
        python="python",
        root="/src",
        redis=RedisArgs(shared_url, '"$REDIS_URL"', "mine:"),
        backends=BACKENDS,
        proxy=("0.0.0.0:8080", "127.0.0.1:8081"),
        export=False,
    )
    assert "s3cret" not in text
    assert "export" not in text
    assert 'python -m proxy weight 50 --redis-url "$REDIS_URL" --key-prefix mine:' in text
    assert "curl -s 127.0.0.1:8080/version" in text


def test_hints_without_proxy_say_how_to_start_it() -> None:
    url = "redis://127.0.0.1:7000/0"
    text = hints(
        python="python", root="/src", redis=RedisArgs(url, url), backends=BACKENDS, proxy=None, export=True
    )
    assert f"python -m proxy serve --redis-url {url}" in text
    assert "/disable/1" not in text


@pytest.mark.parametrize("args", [["--listen", "nowhere"], ["--admin-listen", "1.2.3.4"], ["--bogus"]])
def test_cli_bad_usage_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        devrun_main(args)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


# Readiness and stopping


@pytest.fixture
def stop_signal() -> Iterator[StopSignal]:
    stop = StopSignal()
    yield stop
    stop.close()


def test_wait_until_names_what_it_waited_for(stop_signal: StopSignal) -> None:
    with pytest.raises(StartError, match=r"gave up after 0\.1s waiting for the moon"):
        wait_until(lambda: False, 0.1, "the moon", stop_signal)


def test_wait_until_reports_a_child_that_died(stop_signal: StopSignal) -> None:
    child = Child.start("quitter", [sys.executable, "-c", "raise SystemExit(3)"], Console())
    try:
        with pytest.raises(StartError, match="quitter exited with code 3 before it was ready"):
            wait_until(lambda: False, 30, "quitter", stop_signal, child)
    finally:
        child.stop(5)


def test_stop_signal_wakes_a_wait_at_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = StopSignal()
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        started = time.monotonic()
        assert stop.wait(30)
        assert time.monotonic() - started < 5
        assert stop.signum == signal.SIGTERM
        with pytest.raises(Stopped):
            wait_until(lambda: True, 1, "anything", stop)
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize(
    "choice",
    [
        StoreChoice(StoreKind.FAKEREDIS),
        pytest.param(
            StoreChoice(StoreKind.REDIS_SERVER, redis_server=shutil.which("redis-server")),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["fakeredis", "redis-server"],
)
def test_embedded_store_answers_then_goes_away(choice: StoreChoice, stop_signal: StopSignal) -> None:
    if choice.kind is StoreKind.REDIS_SERVER:
        assert choice.redis_server, "redis-server is not installed: apt-get install redis-server"
    store = open_store(choice, Console(), stop_signal)
    try:
        assert store.url.startswith("redis://127.0.0.1:")
        assert ping(store.url)
        client = redis.Redis.from_url(store.url, decode_responses=True)
        try:
            client.sadd("k", "v")
            assert client.smembers("k") == {"v"}
        finally:
            client.close()
        assert "embedded" in store.describe()
    finally:
        store.close(5)
    assert not ping(store.url)


# One real run


class RedisServer:
    """A redis-server of this test's own on a free port."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed: apt-get install redis-server"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [*redis_server_command(binary, self.port), "--dir", str(tmp)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait.wait_until(
            lambda: self.proc.poll() is None and ping(self.url), 10, f"redis-server on {self.port}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="sy-devrun-") as tmp:
        server = RedisServer(Path(tmp))
        try:
            yield server
        finally:
            server.stop()


def get_json(url: str, path: str) -> object:
    host, _, port = url.removeprefix("http://").rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def get_text(address: str, path: str) -> str:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def start_devrun(redis_url: str, out: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    env["REDIS_URL"] = redis_url
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "devrun", *args], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def registered(client: redis.Redis, keys: KeySpace) -> dict[str, set[str]]:
    return {pool: client.smembers(keys.pool(pool)) for pool in ("production", "staging")}


def app_pids(backends: dict[str, set[str]]) -> list[int]:
    pids = []
    for urls in backends.values():
        (url,) = urls
        body = get_json(url, "/?format=json")
        assert isinstance(body, dict)
        pids.append(int(body["pid"]))
    return pids


def interrupt_and_check(
    devrun: subprocess.Popen[bytes], client: redis.Redis, keys: KeySpace, pids: list[int], out: Path
) -> None:
    devrun.send_signal(signal.SIGINT)
    assert devrun.wait(timeout=30) == 0, out.read_text()
    # devrun reaps its children before it exits, so they are gone by now, not merely dying.
    for pid in pids:
        assert gone(pid), f"pid {pid} outlived devrun\n{out.read_text()}"
    assert registered(client, keys) == {"production": set(), "staging": set()}
    text = out.read_text()
    assert "Traceback" not in text, text
    assert "deregistered production backend" in text and "deregistered staging backend" in text


def monitor_pid(output: str) -> int:
    found = re.search(r"^\[monitor\] .*monitor started .*\bpid=(\d+)", output, re.MULTILINE)
    assert found, output
    return int(found.group(1))


def kill_leftovers(devrun: subprocess.Popen[bytes], pids: list[int]) -> None:
    if devrun.poll() is None:
        devrun.kill()
        devrun.wait()
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_devrun_registers_the_apps_and_cleans_up_on_ctrl_c(redis_server: RedisServer, tmp_path: Path) -> None:
    keys = KeySpace()
    assert keys.pool("production") == "switchyard:pool:production"
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    out = tmp_path / "devrun.out"
    devrun = start_devrun(redis_server.url, out, "--no-proxy")
    pids: list[int] = []
    try:
        wait.wait_until(
            lambda: all(len(m) == 1 for m in registered(client, keys).values()) or devrun.poll() is not None,
            45,
            "both apps to be registered",
        )
        assert devrun.poll() is None, out.read_text()
        backends = registered(client, keys)
        pids = app_pids(backends)
        versions = {
            pool: get_text(next(iter(urls)).removeprefix("http://"), "/version")
            for pool, urls in backends.items()
        }
        assert versions == {"production": "v1\n", "staging": "v2\n"}
        assert "Redis: redis://127.0.0.1:" in out.read_text()
        interrupt_and_check(devrun, client, keys, pids, out)
    finally:
        kill_leftovers(devrun, pids)
        client.close()


@pytest.mark.slow
def test_devrun_serves_through_the_proxy(redis_server: RedisServer, tmp_path: Path) -> None:
    keys = KeySpace()
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    out = tmp_path / "devrun.out"
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    devrun = start_devrun(redis_server.url, out, "--listen", listen, "--admin-listen", admin)
    pids: list[int] = []
    try:
        wait.wait_until(
            lambda: "Ctrl-C stops" in out.read_text() or devrun.poll() is not None, 45, "the proxy to be up"
        )
        assert devrun.poll() is None, out.read_text()
        pids = app_pids(registered(client, keys))
        status = json.loads(get_text(admin, "/status"))
        pids.append(int(status["proxy"]["pid"]))
        # The proxy host's monitor runs too: its first sample reaches Redis.
        wait.wait_until(
            lambda: client.get(keys.host("local-proxy")) is not None, 30, "the monitor's first sample"
        )
        assert json.loads(client.get(keys.host("local-proxy")))["role"] == "proxy"
        pids.append(monitor_pid(out.read_text()))
        # It samples the proxy's own process, not the whole (busy) machine.
        assert f"source=pid:{status['proxy']['pid']}" in out.read_text()
        # What a firing rule of the run's monitor leaves behind, written as the monitor
        # writes it: the alert key (as monitor:local-proxy) and the rule's state.
        client.set(keys.alert, json.dumps({"by": "monitor:local-proxy", "reason": "cpu", "at": time.time()}))
        client.hset(keys.monitor_rules("local-proxy"), "cpu", json.dumps({"phase": "firing"}))
        seen = {get_text(listen, "/version") for _ in range(40)}
        # 40 draws at 30% staging all landing on one side has odds below 1e-6.
        assert seen == {"v1\n", "v2\n"}
        assert '--redis-url "$REDIS_URL"' in out.read_text()
        interrupt_and_check(devrun, client, keys, pids, out)
        # Ctrl-C cleared what the run set in the shared Redis.
        assert client.get(keys.alert) is None and client.hgetall(keys.monitor_rules("local-proxy")) == {}
        assert "cleared the alert key the run's monitor had set" in out.read_text()
    finally:
        kill_leftovers(devrun, pids)
        client.close()
