"""`python -m monitor`: status output, and bad input as one line and an exit code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.status import HostReport, render
from state import HostSample, HostStore, KeySpace, MonitorStore, NotifierStatus, connect
from tests.support import ROOT
from tests.support.monitor import clean_env
from tests.support.ports import free_port


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=ROOT,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("MONITOR_", "SMTP_", "ALERT_")) or key == "REDIS_URL":
            monkeypatch.delenv(key)


async def seed(redis_url: str) -> None:
    """web-1: live, cpu firing, email failing. db-2: no live sample, mem firing."""
    client = connect(redis_url)
    now = time.time()
    await HostStore(client).publish(HostSample("web-1", "proxy", 73.25, 41.0, now - 2), ttl_s=30)
    web = MonitorStore(client, KeySpace(), host="web-1")
    rule = {"metric": "cpu", "threshold": 50.0, "recover_below": 40.0, "held_for": "3 samples"}
    await web.commit(
        {
            "cpu": {"phase": "firing", "since": now - 125, "value": 73.25, "peak": 91.0, "rule": rule},
            "mem": {"phase": "inactive", "value": 41.0, "rule": {**rule, "metric": "mem"}},
        },
        [{"kind": "firing"}],
        ["email"],
    )
    await web.set_notifier(
        NotifierStatus(
            "email", "failing", 4, "SMTP smtp.example.com:587: ConnectionRefusedError", now, None, now + 8
        )
    )
    db = MonitorStore(client, KeySpace(), host="db-2")
    await db.commit({"mem": {"phase": "pending", "streak": 2, "value": 55.0}}, [], [])
    await client.aclose()


def test_status_text(redis_url: str) -> None:
    asyncio.run(seed(redis_url))
    done = run("status", "--redis-url", redis_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "db-2  no live sample: its monitor is stopped or the host is gone"
    assert lines[1] == "  rule mem        pending (2 sample(s) above; last 55%)"
    # Ages grow while the command starts: 2 s and 125 s when seeded, give or take a loaded machine.
    assert re.fullmatch(r"web-1  role proxy  cpu 73\.2%  mem 41\.0%  sampled \d+(\.\d)?s ago", lines[2])
    assert re.fullmatch(
        r"  rule cpu        FIRING since \S+ \S+ UTC \(2m[01]\ds; last 73\.25%, peak 91%\)"
        r" \[cpu > 50% for 3 samples, resolves < 40%\]",
        lines[3],
    ), lines[3]
    assert lines[4] == "  rule mem        inactive (last 41%) [mem > 50% for 3 samples, resolves < 40%]"
    assert lines[5].startswith("  email           FAILING: SMTP smtp.example.com:587: ConnectionRefusedError")
    assert "4 failed attempt(s), next try in " in lines[5] and lines[5].endswith("; 1 waiting)")


def test_status_json(redis_url: str) -> None:
    asyncio.run(seed(redis_url))
    done = run("status", "--json", "--redis-url", redis_url)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    hosts = {h["host"]: h for h in body["hosts"]}
    assert hosts["db-2"]["sample"] is None
    web = hosts["web-1"]
    assert web["sample"]["role"] == "proxy" and web["sample"]["cpu_percent"] == 73.25
    assert 1.5 < web["sample"]["age_s"] < 30
    assert web["rules"]["cpu"]["phase"] == "firing"
    (email,) = web["notifiers"]
    assert (email["channel"], email["state"], email["failures"], email["queued"]) == (
        "email",
        "failing",
        4,
        1,
    )


def test_status_of_an_empty_redis(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--redis-url", redis_url]) == 0
    assert capsys.readouterr().out.startswith("no monitored hosts on this Redis")


def test_status_without_redis_is_one_line_and_exit_1() -> None:
    done = run("status", "--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: Redis is unreachable")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["run"], {}, "error: no role: pass --role proxy|app|staging"),
        (["run", "--role", "app", "--interval-s", "0"], {}, "interval_s (from --interval-s) is 0.0"),
        (["run", "--role", "app", "--name", "a b"], {}, "host name 'a b' is not usable"),
        (["run", "--role", "app", "--source", "pid:x"], {}, "use system or pid:N"),
        (["run", "--role", "app"], {"MONITOR_SMTP_HOST": "x"}, "set SMTP_HOST instead"),
        (
            ["run", "--role", "app"],
            {"MONITOR_RULE_CPU_THRESHOLD": "lots"},
            "MONITOR_RULE_CPU_THRESHOLD is 'lots'",
        ),
        (["run", "--role", "app"], {"SMTP_HOST": "smtp.example.com"}, "ALERT_TO is not"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str],
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_bad_config_file_exits_2_without_a_traceback(tmp_path: Path) -> None:
    file = tmp_path / "m.toml"
    file.write_text("[rules.cpu]\nthreshold = 50\nrecover_below = 70\n")
    done = run("run", "--role", "app", "--config", str(file))
    assert done.returncode == 2
    assert done.stderr.startswith("error: rules.cpu.recover_below") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2() -> None:
    done = run("run", "--role", "database")
    assert done.returncode == 2 and "invalid choice: 'database'" in done.stderr
    assert run().returncode == 2


def test_a_process_that_is_not_there_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    # PID numbers above pid_max (at most 2^22 on Linux) never exist.
    assert main(["run", "--role", "app", "--source", "pid:99999999"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot watch process 99999999") and err.count("\n") == 1


def test_status_rendering_survives_hand_written_junk() -> None:
    junk = HostReport(
        "odd-1",
        None,
        {"cpu": {"phase": 3, "rule": {"threshold": "x"}}, "mem": {"phase": "firing", "since": "then"}},
        (),
    )
    lines = render([junk], time.time()).splitlines()
    assert lines[1] == "  rule cpu        3 (no sample yet)"
    assert lines[2] == "  rule mem        firing (no sample yet)"
