"""The sample app, run as a real process on a free port, as devrun and the proxy see it."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.procs import stop_process
from tests.support.wait import wait_until

READY_S = 15.0

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int, method: str, path: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def start_app(version: str, port: int, *, keep_stderr: bool = False) -> subprocess.Popen[bytes]:
    # The access log goes to stderr: only a short-lived app may fill a pipe nobody reads yet.
    return subprocess.Popen(
        [sys.executable, "-m", "examples.app", "--version", version, "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if keep_stderr else subprocess.DEVNULL,
    )


def wait_healthy(proc: subprocess.Popen[bytes], port: int) -> None:
    def alive() -> None:
        assert proc.poll() is None, f"the app exited with code {proc.returncode} before it was ready"

    def healthy() -> bool:
        alive()
        try:
            return request(port, "GET", "/health").status == 200
        except OSError:
            return False

    wait_until(healthy, READY_S, f"the app on port {port} to be healthy", interval_s=0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc)
    if proc.stderr is not None:
        proc.stderr.close()


@dataclass(frozen=True)
class App:
    proc: subprocess.Popen[bytes]
    port: int


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    port = free_port()
    proc = start_app("v1", port)
    try:
        wait_healthy(proc, port)
        yield App(proc, port)
    finally:
        stop(proc)


def test_index_page_shows_version_and_flags(app: App) -> None:
    reply = request(app.port, "GET", "/", headers={"X-Feature-Flags": "disableSET, <b>bold</b>,,disableSET"})
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.body.decode()
    assert "Switchyard sample app v1" in page
    assert "<code>disableSET</code>" in page
    # Header values are the client's: they are escaped, never markup.
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/", {"Accept": "application/json"}), ("/?format=json", {})],
    ids=["accept-header", "format-query"],
)
def test_index_as_json(app: App, path: str, headers: dict[str, str]) -> None:
    reply = request(app.port, "GET", path, headers={**headers, "X-Feature-Flags": "a, b ,a"})
    assert reply.status == 200
    assert reply.json() == {"version": "v1", "flags": ["a", "b"], "pid": app.proc.pid}


def test_index_without_flags_lists_none(app: App) -> None:
    assert request(app.port, "GET", "/?format=json").json() == {
        "version": "v1",
        "flags": [],
        "pid": app.proc.pid,
    }


def test_version_is_plain_text(app: App) -> None:
    reply = request(app.port, "GET", "/version")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.body == b"v1\n"


def test_health(app: App) -> None:
    reply = request(app.port, "GET", "/health")
    assert reply.status == 200
    assert reply.json() == {"status": "ok", "version": "v1"}


def test_set_then_get_with_query(app: App) -> None:
    assert request(app.port, "GET", "/set?" + urlencode({"key": "q", "value": "1 & 2"})).status == 200
    reply = request(app.port, "GET", "/get?key=q")
    assert reply.status == 200
    assert reply.json() == {"key": "q", "value": "1 & 2", "version": "v1"}


def test_set_with_form_post(app: App) -> None:
    body = urlencode({"key": "f", "value": "form"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert request(app.port, "POST", "/set", headers=headers, body=body).status == 200
    assert request(app.port, "GET", "/get?key=f").json() == {"key": "f", "value": "form", "version": "v1"}


def test_set_with_json_post(app: App) -> None:
    body = json.dumps({"key": "j", "value": "json"}).encode()
    reply = request(app.port, "POST", "/set", headers={"Content-Type": "application/json"}, body=body)
    assert reply.status == 200
    assert request(app.port, "GET", "/get?key=j").json() == {"key": "j", "value": "json", "version": "v1"}


def test_set_overwrites(app: App) -> None:
    request(app.port, "GET", "/set?key=o&value=first")
    request(app.port, "GET", "/set?key=o&value=second")
    assert request(app.port, "GET", "/get?key=o").json() == {"key": "o", "value": "second", "version": "v1"}


def test_get_of_absent_key_is_404_json(app: App) -> None:
    reply = request(app.port, "GET", "/get?key=never-set")
    assert reply.status == 404
    assert reply.json() == {"error": "not_found", "key": "never-set"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("GET", "/set?key=x", {}, None),
        ("GET", "/set?value=x", {}, None),
        ("POST", "/set", {"Content-Type": "application/json"}, b"{not json"),
        ("POST", "/set", {"Content-Type": "application/json"}, b'["key", "value"]'),
        ("POST", "/set", {"Content-Type": "application/json"}, b'{"key": "k", "value": 1}'),
        ("GET", "/get", {}, None),
    ],
)
def test_bad_requests_are_400_json(
    app: App, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> None:
    reply = request(app.port, method, path, headers=headers, body=body)
    assert reply.status == 400
    assert reply.json()["error"] == "bad_request"


@pytest.mark.parametrize("flags", ["disableSET", "other, disableSET", " disableSET "])
def test_disable_set_flag_refuses_set(app: App, flags: str) -> None:
    headers = {"X-Feature-Flags": flags}
    refused = {"error": "feature_disabled", "flag": "disableSET"}
    reply = request(app.port, "GET", "/set?key=blocked&value=1", headers=headers)
    assert reply.status == 403
    assert reply.json() == refused
    body = json.dumps({"key": "blocked", "value": "1"}).encode()
    post = request(
        app.port, "POST", "/set", headers={**headers, "Content-Type": "application/json"}, body=body
    )
    assert post.status == 403
    assert post.json() == refused
    assert request(app.port, "GET", "/get?key=blocked").status == 404


def test_other_flags_do_not_block_set(app: App) -> None:
    reply = request(app.port, "GET", "/set?key=free&value=1", headers={"X-Feature-Flags": "disableSETx"})
    assert reply.status == 200


def test_disable_set_flag_leaves_get_alone(app: App) -> None:
    request(app.port, "GET", "/set?key=readable&value=yes")
    reply = request(app.port, "GET", "/get?key=readable", headers={"X-Feature-Flags": "disableSET"})
    assert reply.status == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/version", 200),
        ("GET", "/health", 200),
        ("GET", "/get?key=absent", 404),
        ("GET", "/set", 400),
        ("GET", "/no-such-page", 404),
        ("DELETE", "/set", 405),
    ],
)
def test_every_response_carries_the_version(app: App, method: str, path: str, status: int) -> None:
    reply = request(app.port, method, path)
    assert reply.status == status
    assert reply.headers["x-app-version"] == "v1"


def test_port_in_use_is_one_line_and_exit_1(app: App) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "examples.app", "--version", "v2", "--listen", f"127.0.0.1:{app.port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"127.0.0.1:{app.port}" in lines[0]
    assert "Traceback" not in second.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--version", "v1", "--listen", "no-port"],
        ["--version", "v1", "--listen", "127.0.0.1:70000"],
        ["--version", "not a version"],
        ["--version", "v1", "--color", "red;background:url(x)"],
    ],
)
def test_bad_usage_exits_2(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.app", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "usage:" in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_stops_cleanly() -> None:
    port = free_port()
    proc = start_app("v2", port, keep_stderr=True)
    try:
        wait_healthy(proc, port)
        assert request(port, "GET", "/version").body == b"v2\n"
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert b"Traceback" not in proc.stderr.read()
    finally:
        stop(proc)
