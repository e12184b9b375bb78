"""`flag set --percent/--variants`, `flag show` and the admin API's flag rules, against a
real redis-server: every change audited, bad input one clear line and no change."""

from __future__ import annotations

import asyncio
import json
import subprocess

import aiohttp
import pytest

from proxy.app import ProxyApp
from state import StateStore
from state.flags import Flag
from tests.support.backends import Backend
from tests.support.proxy import run_cli

Result = subprocess.CompletedProcess[str]


async def cli(redis_url: str, *args: str) -> Result:
    return await asyncio.to_thread(run_cli, *args, env={"REDIS_URL": redis_url})


def one_error_line(result: Result, code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    return lines[0]


async def test_flag_set_percent_variants_and_show(redis_url: str, store: StateStore) -> None:
    result = await cli(redis_url, "flag", "set", "checkout", "--percent", "10")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "flag:checkout: now checkout on, 10% of users"
    result = await cli(redis_url, "flag", "set", "checkout", "--percent", "20")
    assert result.stdout.strip() == "flag:checkout: now checkout on, 20% of users"
    result = await cli(redis_url, "flag", "set", "theme", "off", "--variants", "dark=50,light=50")
    assert result.stdout.strip() == "flag:theme: now theme off, variants dark=50 light=50"
    shown = await cli(redis_url, "flag", "show", "theme", "--json")
    assert json.loads(shown.stdout) == {
        "name": "theme",
        "on": False,
        "kind": "variants",
        "variants": {"dark": 50, "light": 50},
        "routes": [],
    }
    # The old switch keeps the rule.
    switched = await cli(redis_url, "flag", "set", "theme", "on")
    assert switched.stdout == "flag:theme: off dark=50,light=50 -> on dark=50,light=50\n"
    listed = await cli(redis_url, "flag", "list")
    assert listed.stdout.splitlines() == [
        "checkout\ton 20%\t-",
        "disableSET\toff\t/set",
        "theme\ton dark=50,light=50\t-",
    ]
    assert (await store.read_snapshot()).flag_rules["theme"] == Flag(
        on=True, variants=(("dark", 50), ("light", 50))
    )
    entries = await store.audit_log(10)
    assert [(e.what, e.after) for e in reversed(entries)] == [
        ("flag:checkout", {"on": True, "percent": 10}),
        ("flag:checkout", {"on": True, "percent": 20}),
        ("flag:theme", {"on": False, "variants": {"dark": 50, "light": 50}}),
        ("flag:theme", {"on": True, "variants": {"dark": 50, "light": 50}}),
    ]
    assert all(e.who.startswith("cli:") for e in entries)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("flag", "set", "checkout", "--percent", "130"), "0-100"),
        (("flag", "set", "checkout", "--percent", "ten"), "0-100"),
        (("flag", "set", "theme", "--variants", "a=50,b=40"), "add up to 90, not 100"),
        (("flag", "set", "theme", "--variants", "a=50,a=50"), "twice"),
        (("flag", "set", "theme", "--percent", "10", "--variants", "a=50,b=50"), "not both"),
        (("flag", "set", "theme"), "say what to set"),
        (("flag", "set", "1bad", "--percent", "10"), "flag name"),
    ],
)
async def test_bad_flag_input_exits_2_with_one_line_and_changes_nothing(
    redis_url: str, store: StateStore, args: tuple[str, ...], message: str
) -> None:
    await store.set_flag("checkout", True)
    before = await store.read_snapshot()
    audited = await store.redis.xlen(store.keys.audit)
    result = await cli(redis_url, *args)
    assert message in one_error_line(result, 2)
    assert result.stdout == ""
    assert await store.read_snapshot() == before
    assert await store.redis.xlen(store.keys.audit) == audited


async def test_flag_show_of_an_unknown_flag_is_one_line(redis_url: str) -> None:
    assert "'nope' is not set" in one_error_line(await cli(redis_url, "flag", "show", "nope"), 1)


async def test_the_admin_api_sets_and_shows_rules_and_refuses_bad_ones(
    routed: tuple[ProxyApp, dict[str, Backend], StateStore],
) -> None:
    proxy, _, store = routed
    base = f"http://127.0.0.1:{proxy.admin_port}"
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{base}/flags/checkout", json={"percent": 25}) as r:
            assert r.status == 200
            assert [(c["what"], c["after"]) for c in await r.json()] == [
                ("flag:checkout", {"on": True, "percent": 25})
            ]
        async with s.put(f"{base}/flags/theme", json={"variants": {"a": 70, "b": 30}, "on": False}) as r:
            assert r.status == 200
        async with s.get(f"{base}/flags/theme") as r:
            assert (r.status, await r.json()) == (
                200,
                {
                    "name": "theme",
                    "on": False,
                    "kind": "variants",
                    "variants": {"a": 70, "b": 30},
                    "routes": [],
                },
            )
        before = await store.read_snapshot()
        for body in (
            {"percent": 130},
            {"variants": {"a": 50, "b": 49}},
            {"percent": 5, "variants": "a=50,b=50"},
        ):
            async with s.put(f"{base}/flags/checkout", json={"routes": ["/x"], **body}) as r:
                assert r.status == 400 and (await r.json())["error"] == "bad_request"
        assert await store.read_snapshot() == before
        async with s.get(f"{base}/flags/nope") as r:
            assert r.status == 404 and (await r.json())["error"] == "flag_not_found"
    assert [e.who.startswith("admin:") for e in await store.audit_log(2)] == [True, True]
